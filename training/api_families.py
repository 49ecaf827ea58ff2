"""Identifier-resolving API families: the lookup-before-use shape of public REST APIs.

Many real APIs do not take what a user says ("from Lyon to Geneva") but an
identifier another endpoint of the same provider returns (``fromStationId``). A
useful plan first calls the lookup once per named thing, then the action reading
the identifiers (``"$var1.stationId$"``), and never writes the name itself into an
identifier argument. This module writes such requests and their gold call
sequences in NESTFUL's own format (calls labelled ``varN``, arguments
``"$varN.field$"``), so :func:`training.chat_corpus.nestful_answer` turns them into
plans exactly as it turns NESTFUL's training splits.

Every family, name, value and phrasing here is invented for the corpus: a provider
(``RailGo``), the lookup that resolves a named thing to its identifier, and actions
that read one identifier or two (origin and destination). A request asks for one
action, two actions on the same thing, two independent parts (two families, or a
family and a direct tool that needs no lookup), or a direct tool alone; the other
granted tools (up to 8) come from the other families and direct tools. Provider
names appear in three naming styles (``RailGoSearchStation``,
``railgo_search_station``, ``RailGo.searchStation``) so the model reads the list it
is given rather than a memorised spelling.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Param", "Api", "Action", "Family", "FAMILIES", "DIRECT", "FamilyRequest", "make_request",
           "distractors", "iter_requests"]


@dataclass(frozen=True)
class Param:
    """One query parameter. ``kind`` is ``id`` or ``id2`` (the identifier of the first
    or second named thing, read from its lookup call) or the slot whose value it
    takes (``date``, ``count``, ...); an optional parameter is filled only when the
    goal mentions its slot."""

    name: str
    kind: str
    required: bool = True


@dataclass(frozen=True)
class Api:
    """One endpoint: the part of its name after the provider, what it does, its
    parameters and output fields."""

    verb: str
    description: str
    params: tuple[Param, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    """An endpoint reading identifiers, with goal phrasings (``{a}``, ``{b}`` name the
    things, other placeholders the slots)."""

    api: Api
    goals: tuple[str, ...]

    @property
    def pair(self) -> bool:
        """Whether it reads two identifiers (origin and destination)."""
        return any(p.kind == "id2" for p in self.api.params)


@dataclass(frozen=True)
class Family:
    """A provider: a lookup resolving a named thing to an identifier, and actions."""

    brand: str
    entity: str
    names: tuple[str, ...]
    lookup: Api  # its first parameter takes the name; its first output is the identifier
    actions: tuple[Action, ...]

    @property
    def id_field(self) -> str:
        return self.lookup.outputs[0]


def _p(spec: str) -> tuple[Param, ...]:
    """``"fromStationId:id toStationId:id2 date:date passengers?:count"`` as parameters."""
    out = []
    for item in spec.split():
        name, kind = item.split(":")
        out.append(Param(name.rstrip("?"), kind, not name.endswith("?")))
    return tuple(out)


def _a(verb: str, description: str, params: str, outputs: str, *goals: str) -> Action:
    return Action(Api(verb, description, _p(params), tuple(outputs.split())), goals)


def _lookup(verb: str, param: str, description: str, outputs: str) -> Api:
    return Api(verb, description, (Param(param, "name"),), tuple(outputs.split()))


FAMILIES: tuple[Family, ...] = (
    Family("RailGo", "station", ("Lyon", "Geneva", "Milan", "Zurich", "Vienna", "Munich", "Prague", "Turin"),
           _lookup("SearchStation", "query", "Find railway stations by city or station name; returns the "
                   "stationId the other RailGo endpoints take", "stationId stationName country"),
           (_a("SearchTrains", "Search trains between two stations on a date",
               "fromStationId:id toStationId:id2 date:date passengers?:count", "trains price duration",
               "Find trains from {a} to {b} on {date}.",
               "I need a train from {a} to {b} on {date} for {count} passengers.",
               "Which trains run between {a} and {b} on {date}?"),
            _a("StationDepartures", "List the departures of a station",
               "stationId:id date?:date", "departures",
               "Show the departures from {a} station on {date}.",
               "What trains leave {a} station?"))),
    Family("CarHub", "rental location", ("Denver airport", "Lisbon", "Dublin", "Seattle", "Nice", "Porto"),
           _lookup("SearchLocation", "query", "Search car rental locations by city or airport",
                   "locationId name type"),
           (_a("SearchCars", "Find rental cars available at a location for a period",
               "pickupLocationId:id pickupDate:date dropoffDate:date2 driverAge?:age", "cars dailyRate",
               "Rent a car in {a} from {date} to {date2}.",
               "Find rental cars at {a} between {date} and {date2} for a {age}-year-old driver.",
               "Which cars can I pick up in {a} on {date} and return on {date2}?"),
            _a("OneWayRental", "Quote one-way rentals between two locations",
               "pickupLocationId:id dropoffLocationId:id2 pickupDate:date", "cars fee",
               "I want a one-way car rental from {a} to {b} on {date}.",
               "Get one-way rental offers picking up in {a} on {date} and dropping off in {b}."))),
    Family("StayFinder", "destination", ("Kyoto", "Barcelona", "Reykjavik", "Cusco", "Marrakech", "Bali"),
           _lookup("SearchDestination", "query", "Look up a destination and get its destId",
                   "destId name country"),
           (_a("SearchHotels", "Search hotels in a destination for given dates",
               "destId:id checkIn:date checkOut:date2 adults?:count", "hotels prices",
               "Find hotels in {a} from {date} to {date2}.",
               "Look for a hotel in {a} for {count} adults, checking in {date} and out {date2}.",
               "Where can I stay in {a} between {date} and {date2}?"),
            _a("TopAttractions", "The most visited attractions of a destination",
               "destId:id limit?:count", "attractions",
               "What are the top attractions in {a}?",
               "List the {count} most popular sights in {a}."))),
    Family("Ticketly", "venue", ("Madison Square Garden", "Royal Albert Hall", "the O2 Arena", "Red Rocks",
                                 "the Sydney Opera House"),
           _lookup("SearchVenue", "name", "Find a venue by name", "venueId city capacity"),
           (_a("VenueEvents", "Upcoming events at a venue", "venueId:id startDate?:date", "events",
               "List upcoming events at {a}.",
               "What's on at {a} after {date}?"),
            _a("VenueSeating", "The seating plan of a venue", "venueId:id", "sections",
               "Show me the seating plan of {a}."))),
    Family("Tunes", "artist", ("Adele", "Daft Punk", "Miles Davis", "Taylor Swift", "Radiohead", "Shakira"),
           _lookup("SearchArtist", "name", "Search artists by name; returns their artistId",
                   "artistId name genres"),
           (_a("ArtistAlbums", "All albums of an artist", "artistId:id", "albums",
               "List the albums of {a}.",
               "What albums has {a} released?"),
            _a("TopTracks", "An artist's most played tracks in a country",
               "artistId:id country?:country", "tracks",
               "Get the top tracks of {a}.",
               "Show {a}'s most popular songs in {country}."),
            _a("RelatedArtists", "Artists similar to an artist", "artistId:id", "artists",
               "Which artists are similar to {a}?"))),
    Family("ScoreLine", "team", ("Arsenal", "Real Madrid", "the Boston Celtics", "Juventus", "the Chicago Bulls",
                                 "Ajax"),
           _lookup("SearchTeam", "name", "Find a sports team by name", "teamId league country"),
           (_a("TeamFixtures", "A team's fixtures for a season", "teamId:id season:season", "fixtures",
               "Show the fixtures of {a} for the {season} season.",
               "When does {a} play in {season}?"),
            _a("TeamRoster", "The current players of a team", "teamId:id", "players",
               "Who plays for {a}?",
               "Get the current roster of {a}."),
            _a("HeadToHead", "Past results between two teams", "teamId:id opponentId:id2", "matches wins",
               "Compare the head-to-head record of {a} and {b}.",
               "How have {a} done against {b} in past matches?"))),
    Family("MarketData", "company", ("Apple", "Tesla", "Nvidia", "Siemens", "Toyota", "Netflix"),
           _lookup("SearchSymbol", "company", "Find the ticker symbol of a listed company",
                   "symbol exchange name"),
           (_a("Quote", "The latest price of a stock", "symbol:id", "price change",
               "What is {a}'s share price?",
               "Get a stock quote for {a}."),
            _a("CompanyNews", "Recent news about a stock", "symbol:id limit?:count", "articles",
               "Find the latest news about {a} stock.",
               "Show {count} recent news items about {a} shares."))),
    Family("Homely", "region", ("Austin", "Brooklyn", "San Diego", "Portland", "Miami", "Boulder"),
           _lookup("SearchRegion", "query", "Resolve a city or neighbourhood to a regionId",
                   "regionId name state"),
           (_a("Listings", "Homes for sale in a region", "regionId:id maxPrice?:price bedrooms?:count",
               "listings",
               "Find homes for sale in {a}.",
               "Show listings in {a} under {price} dollars with {count} bedrooms."),
            _a("MarketTrends", "Price trends of a region", "regionId:id", "medianPrice trend",
               "How have house prices in {a} changed?"))),
    Family("FilmDB", "movie", ("Inception", "Amelie", "Spirited Away", "The Godfather", "Parasite", "Arrival"),
           _lookup("SearchTitle", "title", "Search movies by title; returns the movieId",
                   "movieId title year"),
           (_a("MovieDetails", "Plot, rating and cast of a movie", "movieId:id", "plot rating cast",
               "Tell me about the movie {a}.",
               "Get the plot and rating of {a}."),
            _a("SimilarMovies", "Movies similar to a movie", "movieId:id", "movies",
               "Recommend films like {a}."),
            _a("WhereToWatch", "Streaming services showing a movie", "movieId:id country?:country",
               "providers",
               "Where can I stream {a}?",
               "Where can I watch {a} in {country}?"))),
    Family("SkyCast", "city", ("Oslo", "Nairobi", "Hanoi", "Lima", "Toronto", "Cape Town"),
           _lookup("SearchCity", "query", "Find a city and its cityKey for the forecast endpoints",
                   "cityKey name country"),
           (_a("Forecast", "Daily weather forecast of a city", "cityKey:id days?:count", "forecast",
               "What's the weather forecast for {a}?",
               "Give me a {count}-day forecast for {a}."),
            _a("AirQuality", "Current air quality of a city", "cityKey:id", "aqi pollutants",
               "How is the air quality in {a}?"))),
    Family("VidTube", "channel", ("Veritasium", "Kurzgesagt", "NASA", "TED", "Smarter Every Day"),
           _lookup("SearchChannel", "query", "Search video channels by name", "channelId title"),
           (_a("ChannelVideos", "Latest uploads of a channel", "channelId:id maxResults?:count", "videos",
               "Show the latest videos from {a}.",
               "List {count} recent uploads of the {a} channel."),
            _a("ChannelStats", "Subscriber and view counts of a channel", "channelId:id", "subscribers views",
               "How many subscribers does {a} have?"))),
    Family("JobBoard", "company", ("Google", "Spotify", "Airbus", "Shopify", "Stripe"),
           _lookup("SearchCompany", "name", "Find a company profile", "companyId industry"),
           (_a("Openings", "Open positions at a company", "companyId:id location?:city", "jobs",
               "Find open jobs at {a}.",
               "Which positions is {a} hiring for in {city}?"),
            _a("CompanyReviews", "Employee reviews of a company", "companyId:id", "rating reviews",
               "What do employees say about working at {a}?"))),
    Family("FlyNow", "airport", ("Paris", "New York", "Tokyo", "Sydney", "London", "Dubai", "Singapore",
                                 "Berlin"),
           _lookup("SearchAirport", "query", "Search airports by city name; returns the airportId used by "
                   "the flight endpoints", "airportId iata name"),
           (_a("SearchFlights", "Search flights between two airports",
               "originAirportId:id destinationAirportId:id2 departDate:date returnDate?:date2 adults?:count",
               "flights price",
               "Find flights from {a} to {b} on {date}.",
               "Search round-trip flights from {a} to {b}, leaving {date} and returning {date2}.",
               "I need {count} tickets from {a} to {b} on {date}."),
            _a("CheapestDates", "The cheapest days to fly between two airports in a month",
               "originAirportId:id destinationAirportId:id2 month:month", "dates prices",
               "When is it cheapest to fly from {a} to {b} in {month}?"))),
    Family("CookBox", "ingredient", ("spinach", "chickpeas", "salmon", "mushrooms", "lentils", "tofu"),
           _lookup("SearchIngredient", "name", "Find an ingredient", "ingredientId name"),
           (_a("RecipesByIngredient", "Recipes using an ingredient", "ingredientId:id diet?:diet", "recipes",
               "Find recipes with {a}.",
               "Give me {diet} recipes that use {a}."),
            _a("Nutrition", "Nutrition facts of an ingredient", "ingredientId:id", "calories protein",
               "What is the nutritional value of {a}?"))),
)

#: Tools that take what the user says directly (no lookup): (provider, action)
DIRECT: tuple[tuple[str, Action], ...] = (
    ("NewsWire", _a("SearchNews", "Search news articles by keyword", "keyword:q language?:language", "articles",
                    "Find news about {q}.", "Get {language} news articles on {q}.")),
    ("WikiFacts", _a("Summary", "A short encyclopedia summary of a topic", "topic:q", "summary",
                     "Give me a short summary of {q}.", "What is {q}?")),
    ("FxRates", _a("Convert", "Convert an amount between currencies", "from:cur1 to:cur2 amount:amount",
                   "result rate", "Convert {amount} {cur1} to {cur2}.", "How much is {amount} {cur1} in {cur2}?")),
    ("Jokester", _a("RandomJoke", "A random joke", "category?:category", "joke",
                    "Tell me a joke.", "Tell me a {category} joke.")),
    ("WorldClock", _a("CurrentTime", "The current time in a time zone", "timezone:tz", "time",
                      "What time is it in {tz}?")),
    ("Quotable", _a("RandomQuote", "A random quotation", "tag?:category", "quote author",
                    "Share an inspiring quote.", "Give me a quote about {category}.")),
)

_SLOTS: dict[str, tuple[str, ...]] = {
    "count": ("2", "3", "4", "5"),
    "age": ("23", "30", "45", "67"),
    "price": ("350000", "500000", "750000"),
    "season": ("2023", "2024", "2025"),
    "month": ("2025-03", "2025-07", "2025-11", "2026-01"),
    "country": ("US", "GB", "FR", "DE", "JP", "BR"),
    "city": ("Berlin", "London", "Toronto", "Austin", "Singapore"),
    "diet": ("vegan", "vegetarian", "gluten-free"),
    "q": ("electric cars", "the Mars mission", "climate policy", "quantum computing", "the World Cup",
          "renewable energy"),
    "language": ("en", "fr", "de", "es"),
    "cur1": ("USD", "EUR", "GBP", "JPY"),
    "cur2": ("CHF", "CAD", "INR", "AUD"),
    "amount": ("100", "250", "1200", "75"),
    "tz": ("Europe/Paris", "Asia/Tokyo", "America/Chicago", "Australia/Sydney"),
    "category": ("programming", "science", "wisdom", "life"),
}
_NUMERIC = frozenset({"count", "age", "price", "season", "amount"})
_SLOT_RE = re.compile(r"\{(\w+)\}")
STYLES = ("camel", "snake", "dotted")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _name(brand: str, verb: str, style: str) -> str:
    if style == "snake":
        return f"{_snake(brand)}_{_snake(verb)}"
    if style == "dotted":
        return f"{brand}.{verb[0].lower()}{verb[1:]}"
    return brand + verb


def _field(name: str, style: str) -> str:
    return _snake(name) if style == "snake" else name


def _date(rng: random.Random) -> tuple[str, str]:
    month, day = rng.randint(1, 12), rng.randint(1, 20)
    year = rng.choice((2025, 2026))
    return f"{year}-{month:02d}-{day:02d}", f"{year}-{month:02d}-{day + rng.randint(2, 8):02d}"


@dataclass(frozen=True)
class FamilyRequest:
    """One request: the goal, its gold calls (NESTFUL format) and every API involved."""

    goal: str
    calls: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...]  # the APIs the calls use, as NESTFUL-style specs
    brands: frozenset[str]  # the providers they belong to


class _Builder:
    """Accumulates one request's calls, labels and API specs."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.calls: list[dict[str, Any]] = []
        self.specs: dict[str, dict[str, Any]] = {}
        self.brands: set[str] = set()
        date, date2 = _date(rng)
        self.values = {k: rng.choice(v) for k, v in _SLOTS.items()} | {"date": date, "date2": date2}

    def spec(self, brand: str, api: Api, style: str) -> str:
        name = _name(brand, api.verb, style)
        self.brands.add(brand)
        self.specs[name] = {
            "name": name, "description": api.description,
            "query_parameters": {_field(p.name, style): {
                "type": "integer" if p.kind in _NUMERIC else "string", "required": p.required,
                "description": ""} for p in api.params},
            "output_parameters": {_field(o, style): {"type": "string"} for o in api.outputs},
        }
        return name

    def call(self, name: str, args: dict[str, Any]) -> str:
        label = f"var{len(self.calls) + 1}"
        self.calls.append({"name": name, "label": label, "arguments": args})
        return label

    def action(self, brand: str, action: Action, style: str, goal: str, refs: dict[str, str]) -> None:
        """Call ``action`` with the slots ``goal`` mentions and ``refs`` (id kind -> "$varN.field$")."""
        used = set(_SLOT_RE.findall(goal))
        args: dict[str, Any] = {}
        for p in action.api.params:
            if p.kind in refs:
                args[_field(p.name, style)] = refs[p.kind]
            elif p.kind in used or p.kind == "name":
                value = self.values[p.kind]
                args[_field(p.name, style)] = int(value) if p.kind in _NUMERIC else value
            elif p.required:
                raise ValueError(f"{action.api.verb}: goal {goal!r} leaves {p.name} unsaid")
        self.call(self.spec(brand, action.api, style), args)

    def chain(self, family: Family, steps: list[tuple[Action, str]], style: str, names: list[str]) -> list[str]:
        """One lookup per thing the ``steps`` (action, goal) read, then the actions in
        order, each reading those lookups; the goals, filled."""
        lookup = self.spec(family.brand, family.lookup, style)
        field = _field(family.id_field, style)
        kinds = {p.kind for action, _ in steps for p in action.api.params} & {"id", "id2"}
        refs = {}
        for kind, thing in zip(("id", "id2"), names, strict=False):
            if kind in kinds:
                label = self.call(lookup, {_field(family.lookup.params[0].name, style): thing})
                refs[kind] = f"${label}.{field}$"
        for action, goal in steps:
            self.action(family.brand, action, style, goal, refs)
        b = names[1] if len(names) > 1 else ""
        return [goal.format(a=names[0], b=b, **self.values) for _, goal in steps]


def _lower_first(text: str) -> str:
    first = text.split(" ", 1)[0]
    return text if first in ("I", "I'm") or first[1:2].isupper() else text[0].lower() + text[1:]


def make_request(rng: random.Random) -> FamilyRequest:
    """One random request (see the module docstring for its shapes)."""
    b = _Builder(rng)
    shape = rng.choices(("one", "pair_or_one", "fanout", "two_families", "family_direct", "direct"),
                        weights=(20, 20, 12, 25, 15, 8))[0]
    parts: list[str] = []

    def family_part(family: Family, *, pair_first: bool) -> None:
        style = rng.choice(STYLES)
        names = rng.sample(family.names, 2)
        pairs = [a for a in family.actions if a.pair]
        action = rng.choice(pairs) if pair_first and pairs else rng.choice(family.actions)
        parts.extend(b.chain(family, [(action, rng.choice(action.goals))], style, names))

    if shape in ("one", "pair_or_one"):
        family_part(rng.choice(FAMILIES), pair_first=shape == "pair_or_one")
    elif shape == "fanout":
        family = rng.choice([f for f in FAMILIES if sum(not a.pair for a in f.actions) >= 2])
        style = rng.choice(STYLES)
        first, second = rng.sample([a for a in family.actions if not a.pair], 2)
        name = rng.choice(family.names)
        steps = [(first, rng.choice(first.goals)), (second, rng.choice(second.goals))]
        parts.extend(b.chain(family, steps, style, [name]))
    elif shape == "two_families":
        for family in rng.sample(FAMILIES, 2):
            family_part(family, pair_first=rng.random() < 0.5)
    else:
        provider, action = rng.choice(DIRECT)
        if shape == "family_direct" and rng.random() < 0.5:
            family_part(rng.choice(FAMILIES), pair_first=rng.random() < 0.5)
        goal = rng.choice(action.goals)
        b.action(provider, action, rng.choice(STYLES), goal, {})
        parts.append(goal.format(**b.values))
        if shape == "family_direct" and len(parts) == 1:
            family_part(rng.choice(FAMILIES), pair_first=rng.random() < 0.5)
    goal = parts[0]
    for part in parts[1:]:
        goal += " " + rng.choice((part, "Also, " + _lower_first(part), "And " + _lower_first(part)))
    return FamilyRequest(goal, tuple(b.calls), tuple(b.specs.values()), frozenset(b.brands))


def distractors(rng: random.Random, used: set[str]) -> list[dict[str, Any]]:
    """API specs of the providers not in ``used`` (one naming style each), shuffled."""
    b = _Builder(rng)
    for family in FAMILIES:
        if family.brand not in used:
            style = rng.choice(STYLES)
            for api in (family.lookup, *(a.api for a in family.actions)):
                b.spec(family.brand, api, style)
    for provider, action in DIRECT:
        if provider not in used:
            b.spec(provider, action.api, rng.choice(STYLES))
    out = list(b.specs.values())
    rng.shuffle(out)
    return out


def iter_requests(count: int, seed: int) -> Iterator[FamilyRequest]:
    """``count`` requests from one seeded stream."""
    rng = random.Random(seed)
    for _ in range(count):
        yield make_request(rng)
