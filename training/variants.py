"""Surface variety for the instruct corpus: other names, phrasings and lookup steps.

Real tool lists name the same capability in many ways (``weather``,
``get_weather``, ``forecast_lookup``) and users ask for it in many ways. A corpus
that always grants ``weather`` and always says "get the weather forecast for X"
teaches a model to write the names it memorised instead of the names it was
granted. Each tool here gets:

- aliases: names built the way APIs are commonly named (verb_noun, noun_verb,
  a bare noun), one of which replaces the canonical name in both the granted tool
  list and the answer of an example;
- extra goal phrasings with the same ``{arg}`` placeholders as the canonical phrase.

:data:`LOOKUPS` adds the lookup-then-act pattern of real API sequences: a first
call resolves a name to an identifier, and the next call takes that identifier as
an argument (``{{ contact }}`` in the ``to`` of ``send_email``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from training.pools import TOOLS, ArgSpec, ToolSpec

__all__ = ["ALIASES", "PHRASES", "LOOKUPS", "Lookup", "varied"]

ALIASES: dict[str, tuple[str, ...]] = {
    "web_search": ("search_web", "internet_search", "google_search", "search"),
    "news_search": ("search_news", "get_news", "latest_news", "news_lookup"),
    "fetch_page": ("fetch_url", "download_page", "get_webpage", "scrape_page"),
    "summarize": ("summarize_text", "summarise", "make_summary", "text_summary"),
    "translate": ("translate_text", "translation", "translator"),
    "send_email": ("email_send", "send_mail", "compose_email", "mail"),
    "rank": ("rank_items", "sort_by", "order_items"),
    "filter_items": ("filter", "filter_list", "select_items"),
    "sql_query": ("run_sql", "query_database", "execute_sql", "db_query"),
    "read_file": ("file_read", "open_file", "load_file"),
    "write_file": ("save_file", "file_write", "store_file"),
    "calculator": ("calculate", "evaluate_expression", "math_eval"),
    "weather": ("get_weather", "weather_forecast", "forecast_lookup", "check_weather"),
    "hotel_search": ("search_hotels", "find_hotels", "hotel_lookup"),
    "book_hotel": ("hotel_booking", "reserve_hotel", "book_room"),
    "currency_convert": ("convert_currency", "exchange_rate_convert", "fx_convert"),
    "calendar_create": ("create_calendar_event", "create_event", "schedule_event", "add_event"),
    "classify": ("classify_text", "text_classifier", "label_text"),
    "extract_entities": ("entity_extraction", "find_entities", "ner"),
    "sentiment": ("sentiment_analysis", "analyze_sentiment", "get_sentiment"),
    "http_get": ("http_request", "call_api", "get_endpoint"),
    "notify": ("post_message", "send_message", "slack_post", "chat_post"),
    "image_caption": ("caption_image", "describe_image", "image_to_text"),
    "geocode": ("get_coordinates", "address_lookup", "geocode_address"),
    "route_plan": ("plan_route", "get_directions", "directions"),
    "stock_price": ("get_stock_price", "stock_quote", "quote_lookup"),
    "vector_search": ("kb_search", "semantic_search", "search_knowledge_base"),
    "run_python": ("python_exec", "execute_code", "code_interpreter"),
    "create_ticket": ("open_ticket", "file_issue", "create_issue"),
    "lookup_user": ("get_user", "user_profile", "find_user"),
    "compare": ("compare_texts", "diff", "compare_values"),
    "spell_check": ("fix_spelling", "proofread", "spellcheck"),
}

PHRASES: dict[str, tuple[str, ...]] = {
    "web_search": ("look up {query} online", "find out about {query} on the web"),
    "news_search": ("get the latest headlines on {topic}", "look up recent news about {topic}"),
    "fetch_page": ("download {url}", "grab the contents of {url}"),
    "summarize": ("write a short summary of {text}", "condense {text} into a few sentences"),
    "translate": ("put {text} into {target_language}", "render {text} in {target_language}"),
    "send_email": ("send an email to {to} titled {subject}", "mail {to} under the subject {subject}"),
    "rank": ("sort {items} from best to worst", "order {items} by quality"),
    "filter_items": ("drop {items} unless {condition}", "filter {items} by {condition}"),
    "sql_query": ("query the database with {query}", "pull the rows for {query} from the database"),
    "read_file": ("open {path}", "load the contents of {path}"),
    "write_file": ("write {content} to {path}", "store {content} in {path}"),
    "calculator": ("work out {expression}", "calculate {expression}"),
    "weather": ("check the weather in {city}", "find out whether it will rain in {city}"),
    "hotel_search": ("look for a hotel in {city}", "search for places to stay in {city}"),
    "book_hotel": ("reserve {hotel} for {nights} nights", "make a booking at {hotel} for {nights} nights"),
    "currency_convert": ("change {amount} {from_currency} into {to_currency}",
                         "how much is {amount} {from_currency} in {to_currency}"),
    "calendar_create": ("put {title} in the calendar for {date}", "book a meeting called {title} on {date}"),
    "classify": ("label {text}", "decide which category {text} belongs to"),
    "extract_entities": ("list the people and organisations named in {text}", "pull out the names in {text}"),
    "sentiment": ("tell me whether {text} is positive or negative", "analyse the tone of {text}"),
    "http_get": ("send a GET request to {url}", "query the API at {url}"),
    "notify": ("tell {channel} that {message}", "send {message} to {channel}"),
    "image_caption": ("caption the picture at {image_url}", "say what is in the image {image_url}"),
    "geocode": ("find the coordinates of {address}", "get the location of {address}"),
    "route_plan": ("get directions from {origin} to {destination}", "work out how to get from {origin} to {destination}"),
    "stock_price": ("check what {symbol} is trading at", "get a quote for {symbol}"),
    "vector_search": ("search our documents for {query}", "find passages about {query} in the knowledge base"),
    "run_python": ("execute {code}", "run {code} in Python"),
    "create_ticket": ("file an issue called {title}", "report {title} in the tracker"),
    "lookup_user": ("fetch the profile of {user_id}", "find the account {user_id}"),
    "compare": ("contrast {a} and {b}", "see how {a} differs from {b}"),
    "spell_check": ("proofread {text}", "correct the typos in {text}"),
}


@dataclass(frozen=True)
class Lookup:
    """A resolving call and the argument of a later tool that takes its output:
    ``then`` names a tool of :data:`training.pools.TOOLS`, ``arg`` its argument."""

    tool: ToolSpec
    then: str
    arg: str


def _t(name: str, description: str, arg: str, output: str, phrase: str) -> ToolSpec:
    return ToolSpec(name, description, (ArgSpec(arg),), output, phrase)


LOOKUPS: tuple[Lookup, ...] = (
    Lookup(_t("find_contact", "find a person's email address by name", "name", "contact",
              "find the email address of {name}"), "send_email", "to"),
    Lookup(_t("resolve_ticker", "find the stock symbol of a company", "company", "symbol",
              "find the ticker symbol of {company}"), "stock_price", "symbol"),
    Lookup(_t("find_city", "find the city a landmark or airport is in", "place", "city",
              "work out which city {place} is in"), "weather", "city"),
    Lookup(_t("search_hotel_id", "find a hotel's identifier by name", "hotel_name", "hotel_id",
              "find the hotel called {hotel_name}"), "book_hotel", "hotel"),
    Lookup(_t("find_channel", "find the chat channel of a team", "team", "channel",
              "find the channel of the {team} team"), "notify", "channel"),
    Lookup(_t("get_user_id", "find a user's id from their name", "user_name", "user_id",
              "find the user id of {user_name}"), "lookup_user", "user_id"),
)

LOOKUP_VALUES: dict[str, tuple[str, ...]] = {
    "name": ("Maria Lopez", "Ken Ito", "the finance lead"),
    "company": ("Nvidia", "Apple", "Tesla"),
    "place": ("the Eiffel Tower", "Heathrow", "the Colosseum"),
    "hotel_name": ("Hotel Aurora", "the Grand Plaza"),
    "team": ("platform", "design", "sales"),
    "user_name": ("dana.k", "ops-bot"),
}

_BY_NAME = {t.name: t for t in TOOLS}


def varied(tool: ToolSpec, rng: random.Random, *, keep_name: float = 0.35) -> ToolSpec:
    """``tool`` under a random alias (kept as is with probability ``keep_name``) with a
    random one of its goal phrasings."""
    name = tool.name
    if rng.random() >= keep_name and ALIASES.get(tool.name):
        name = rng.choice(ALIASES[tool.name])
    phrase = rng.choice((tool.phrase, *PHRASES.get(tool.name, ())))
    return replace(tool, name=name, phrase=phrase)


def consumer(lookup: Lookup) -> ToolSpec:
    """The tool that takes ``lookup``'s output."""
    return _BY_NAME[lookup.then]
