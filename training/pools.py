"""Vocabulary of the synthetic corpus: tools, library subgraphs, values, phrasings.

Every tool carries the goal phrase that asks for it. A phrase names each required
argument with a ``{arg}`` placeholder; the generator fills it with a context
variable (``{{ city }}``), a literal value or a back-reference to the previous
step's output, and writes the same choice into the tool call's ``arguments``. That
one-to-one link between the goal text and the answer is what the model learns.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ArgSpec",
    "ToolSpec",
    "LibSpec",
    "LlmStep",
    "TOOLS",
    "LIBRARY",
    "LLM_STEPS",
    "VALUES",
    "TEXT_ARGS",
    "TARGET_STEMS",
    "EXTRA_VARS",
]


@dataclass(frozen=True)
class ArgSpec:
    """One argument of a tool's schema."""

    name: str
    type: str = "string"
    required: bool = True


@dataclass(frozen=True)
class ToolSpec:
    """A tool the corpus can grant, with the goal phrase that calls for it."""

    name: str
    description: str
    args: tuple[ArgSpec, ...]
    output: str
    phrase: str

    def to_json(self) -> dict[str, object]:
        """The tool in the request JSON format."""
        return {
            "name": self.name,
            "description": self.description,
            "arguments": [{"name": a.name, "type": a.type, "required": a.required} for a in self.args],
            "output": self.output,
        }


@dataclass(frozen=True)
class LibSpec:
    """A library subgraph a generated plan may hand over to."""

    path: str
    signature: str
    description: str
    phrase: str

    def to_json(self) -> dict[str, str]:
        """The library entry in the request JSON format."""
        return {"path": self.path, "signature": self.signature, "description": self.description}


@dataclass(frozen=True)
class LlmStep:
    """A step done by the model itself (an ``llm_call`` node), no tool needed."""

    id: str
    phrase: str
    template: str
    output: str


def _a(name: str, type_: str = "string", required: bool = True) -> ArgSpec:
    return ArgSpec(name, type_, required)


TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("web_search", "search the web and return the top results",
             (_a("query"), _a("limit", "integer", False)), "results", "search the web for {query}"),
    ToolSpec("news_search", "find recent news articles on a topic",
             (_a("topic"), _a("limit", "integer", False)), "articles", "find recent news about {topic}"),
    ToolSpec("fetch_page", "download a web page as text",
             (_a("url"),), "page", "fetch the page at {url}"),
    ToolSpec("summarize", "summarize a text in a few sentences",
             (_a("text"), _a("max_words", "integer", False)), "summary", "summarize {text}"),
    ToolSpec("translate", "translate a text into another language",
             (_a("text"), _a("target_language")), "translation", "translate {text} into {target_language}"),
    ToolSpec("send_email", "send an email",
             (_a("to"), _a("subject"), _a("body", "string", False)), "receipt",
             "email {to} with the subject {subject}"),
    ToolSpec("rank", "rank a list of items by a criterion",
             (_a("items"), _a("criterion", "string", False)), "ranked", "rank {items}"),
    ToolSpec("filter_items", "keep the items that satisfy a condition",
             (_a("items"), _a("condition")), "filtered", "keep only {items} where {condition}"),
    ToolSpec("sql_query", "run a read-only SQL query",
             (_a("query"), _a("database", "string", False)), "rows", "run the SQL query {query}"),
    ToolSpec("read_file", "read a file from the workspace",
             (_a("path"),), "content", "read the file {path}"),
    ToolSpec("write_file", "write text to a file in the workspace",
             (_a("path"), _a("content")), "written", "save {content} to the file {path}"),
    ToolSpec("calculator", "evaluate an arithmetic expression",
             (_a("expression"),), "value", "compute {expression}"),
    ToolSpec("weather", "get the weather forecast for a city",
             (_a("city"), _a("date", "string", False)), "forecast", "get the weather forecast for {city}"),
    ToolSpec("hotel_search", "find hotels in a city",
             (_a("city"), _a("max_price", "number", False)), "hotels", "find hotels in {city}"),
    ToolSpec("book_hotel", "book a hotel room",
             (_a("hotel"), _a("nights", "integer")), "booking", "book {hotel} for {nights} nights"),
    ToolSpec("currency_convert", "convert an amount between currencies",
             (_a("amount", "number"), _a("from_currency"), _a("to_currency")), "converted",
             "convert {amount} from {from_currency} to {to_currency}"),
    ToolSpec("calendar_create", "create a calendar event",
             (_a("title"), _a("date"), _a("attendees", "string", False)), "event",
             "schedule {title} on {date}"),
    ToolSpec("classify", "classify a text into one of several labels",
             (_a("text"), _a("labels", "string", False)), "label", "classify {text}"),
    ToolSpec("extract_entities", "extract named entities from a text",
             (_a("text"),), "entities", "extract the entities from {text}"),
    ToolSpec("sentiment", "score the sentiment of a text",
             (_a("text"),), "score", "score the sentiment of {text}"),
    ToolSpec("http_get", "call an HTTP endpoint with GET",
             (_a("url"), _a("headers", "string", False)), "response", "call the endpoint {url}"),
    ToolSpec("notify", "post a message to a chat channel",
             (_a("channel"), _a("message")), "ack", "post {message} to {channel}"),
    ToolSpec("image_caption", "describe an image",
             (_a("image_url"),), "caption", "describe the image at {image_url}"),
    ToolSpec("geocode", "turn an address into coordinates",
             (_a("address"),), "location", "locate {address}"),
    ToolSpec("route_plan", "plan a route between two places",
             (_a("origin"), _a("destination"), _a("mode", "string", False)), "route",
             "plan a route from {origin} to {destination}"),
    ToolSpec("stock_price", "get the latest price of a stock",
             (_a("symbol"),), "price", "get the stock price of {symbol}"),
    ToolSpec("vector_search", "search the knowledge base by meaning",
             (_a("query"), _a("top_k", "integer", False)), "passages",
             "look up {query} in the knowledge base"),
    ToolSpec("run_python", "run a short Python snippet in a sandbox",
             (_a("code"),), "output", "run the Python code {code}"),
    ToolSpec("create_ticket", "open a ticket in the issue tracker",
             (_a("title"), _a("description", "string", False), _a("priority", "string", False)),
             "ticket", "open a ticket titled {title}"),
    ToolSpec("lookup_user", "fetch a user's profile",
             (_a("user_id"),), "profile", "look up the user {user_id}"),
    ToolSpec("compare", "compare two texts or values",
             (_a("a"), _a("b")), "comparison", "compare {a} with {b}"),
    ToolSpec("spell_check", "fix spelling mistakes in a text",
             (_a("text"),), "corrected", "fix the spelling in {text}"),
)

LIBRARY: tuple[LibSpec, ...] = (
    LibSpec("/lib/math/add", "(a: number, b: number) -> sum: number", "adds two numbers",
            "add up the totals"),
    LibSpec("/lib/reasoning/try_catch", "(action: string) -> result: string",
            "runs an action and recovers from its failure", "recover from any failure"),
    LibSpec("/lib/memory/store", "(key: string, value: string) -> stored: boolean",
            "stores a value in long-term memory", "store the outcome in memory"),
    LibSpec("/lib/conversation/reply", "(message: string) -> reply: string",
            "writes a reply to the user", "reply to the user"),
    LibSpec("/lib/workflow/approve", "(request: string) -> approved: boolean",
            "asks a human to approve a request", "ask a human for approval"),
    LibSpec("/lib/knowledge/cite", "(claims: string) -> citations: string",
            "finds sources for a list of claims", "cite the sources"),
    LibSpec("/lib/reasoning/verify", "(answer: string) -> verdict: string",
            "double-checks an answer", "verify the answer"),
    LibSpec("/lib/memory/recall", "(query: string) -> memories: string",
            "recalls related memories", "recall what we know already"),
    LibSpec("/lib/workflow/report", "(findings: string) -> report: string",
            "formats findings as a report", "format everything as a report"),
)

LLM_STEPS: tuple[LlmStep, ...] = (
    LlmStep("draft", "draft a short answer", "Draft a short answer using {src}.", "draft"),
    LlmStep("explain", "explain the result in plain words", "Explain {src} in plain words.", "explanation"),
    LlmStep("outline", "write an outline", "Write an outline based on {src}.", "outline"),
    LlmStep("critique", "critique the findings", "Critique {src} and list weak points.", "critique"),
    LlmStep("answer", "answer the question", "Answer the question using {src}.", "answer"),
    LlmStep("brainstorm", "brainstorm ideas", "Brainstorm ideas about {src}.", "ideas"),
)

# Literal values per argument name; every argument name used by a tool is listed.
VALUES: dict[str, tuple[str, ...]] = {
    "query": ("best pizza in Naples", "cheap flights to Lisbon", "rust async runtime",
              "SELECT name FROM users", "electric cars 2024", "vegan recipes"),
    "topic": ("climate policy", "AI chips", "the football final", "housing prices", "space launches"),
    "url": ("https://example.com/report", "https://example.org/api/v1/status", "https://news.example.com"),
    "text": ("the meeting notes", "the customer review", "the press release"),
    "target_language": ("French", "German", "Spanish", "Japanese", "Italian"),
    "to": ("alice@example.com", "team@example.org", "bob@example.net"),
    "subject": ("Weekly update", "Trip plan", "Results", "Action needed"),
    "items": ("the candidates", "the offers", "the search results"),
    "condition": ("price < 100", "rating >= 4", "in stock"),
    "path": ("notes/todo.md", "data/report.csv", "out/summary.txt"),
    "content": ("the summary", "the final report"),
    "expression": ("12 * 7 + 3", "(250 - 40) / 3", "2 ** 10"),
    "city": ("Rome", "Paris", "Tokyo", "Berlin", "Lima", "Oslo"),
    "hotel": ("Hotel Aurora", "the Grand Plaza", "Casa Verde"),
    "nights": ("2", "3", "5"),
    "amount": ("100", "2500", "49.9"),
    "from_currency": ("USD", "EUR", "JPY"),
    "to_currency": ("EUR", "GBP", "CHF"),
    "title": ("Design review", "Quarterly planning", "Login page crashes"),
    "date": ("2025-03-14", "tomorrow", "next Monday"),
    "channel": ("#ops", "#general", "#alerts"),
    "message": ("the deploy is done", "the report is ready"),
    "image_url": ("https://example.com/cat.png", "https://example.com/chart.jpg"),
    "address": ("10 Downing Street, London", "1600 Amphitheatre Parkway"),
    "origin": ("Milan", "the airport", "Shibuya"),
    "destination": ("Florence", "the city centre", "Kyoto"),
    "symbol": ("AAPL", "NVDA", "TSLA"),
    "code": ("print(sum(range(10)))", "import math; print(math.pi)"),
    "user_id": ("u-1042", "u-77", "admin"),
    "a": ("the first draft", "last year's figures"),
    "b": ("the second draft", "this year's figures"),
    "limit": ("5", "10", "3"),
    "max_words": ("50", "100"),
    "body": ("see the attached summary",),
    "criterion": ("price", "rating", "relevance"),
    "database": ("analytics", "crm"),
    "date_opt": ("today",),
    "max_price": ("150", "80.5"),
    "attendees": ("alice, bob",),
    "labels": ("spam, ham",),
    "headers": ("Accept: application/json",),
    "mode": ("walking", "train", "car"),
    "top_k": ("5", "8"),
    "description": ("steps to reproduce attached",),
    "priority": ("high", "low"),
}

# Arguments that naturally take the previous step's output.
TEXT_ARGS: frozenset[str] = frozenset({"text", "items", "content", "message", "body", "a", "code"})

# Context variables that appear in requests without being used by the goal.
EXTRA_VARS: dict[str, tuple[str, str]] = {
    "user_name": ("string", "Dana"),
    "locale": ("string", "en-GB"),
    "session_id": ("string", "s-918"),
    "max_results": ("integer", "10"),
    "verbose": ("boolean", "false"),
    "temperature_unit": ("string", "celsius"),
    "retries": ("integer", "3"),
    "threshold": ("number", "0.75"),
}

TARGET_STEMS: tuple[str, ...] = (
    "plan", "step", "subtask", "research", "trip", "report", "triage", "followup",
    "task", "pipeline", "job", "retry", "branch", "answer",
)
