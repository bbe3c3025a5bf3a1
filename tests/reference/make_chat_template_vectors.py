#!/usr/bin/env python3
"""Writes the chat-template test vectors: tests/reference/data/chat_templates/*.json.

Each template is rendered with Python jinja2 configured exactly as transformers'
`_compile_jinja_template` configures it (ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True) with the loopcontrols extension and a `generation` block tag, the `tojson`
override json.dumps(x, ensure_ascii=False, indent, separators, sort_keys), and the
`raise_exception` / `strftime_now` globals), on every conversation in CONVERSATIONS, with
add_generation_prompt off and on, and called as apply_chat_template calls it:
render(messages=..., tools=..., documents=..., add_generation_prompt=..., bos_token, eos_token,
**chat_template_kwargs). strftime_now uses a fixed clock (FIXED_NOW) so the vectors are stable.

Templates:
  * SmolLM2: `tokenizer.chat_template` of the bundled GGUF, read with the `gguf` package;
  * PyPI: every *.jinja chat template shipped in the axolotl and trl wheels (downloaded with
    `pip download --no-deps`, read from the wheel zip, never installed);
  * own: tests/reference/chat_templates/own/*.jinja (ChatML, Llama-2/3, Mistral, Qwen2-tools,
    Gemma and Phi-3 styles written for this project, and templates exercising each Jinja
    feature the interpreter supports).

Outputs are stored in full for the SmolLM2 and own templates. For the PyPI templates (about
110 templates) the full text is stored for the first FULL_TEXT_CONVERSATIONS conversations and,
to keep the data a few MB, an FNV-1a 64-bit hash plus the byte length for the rest; the C++
test compares every render byte for byte (text) or by hash and length.

Usage: .venv/bin/python tests/reference/make_chat_template_vectors.py [--model GGUF]
"""

import argparse
import datetime
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import traceback
import warnings
import zipfile

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "data", "chat_templates")
OWN_DIR = os.path.join(HERE, "chat_templates", "own")
PYPI_PACKAGES = ["axolotl==0.21.0", "trl==1.16.0"]
FIXED_NOW = datetime.datetime(2026, 3, 14, 15, 9, 26)
FULL_TEXT_CONVERSATIONS = 8


# ---- the transformers environment ---------------------------------------------------------------

class GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}`: renders its body (transformers uses it to mark
    assistant tokens; the text is unchanged)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def fnv1a64(data: bytes) -> str:
    h = 0xcbf29ce484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ---- conversations ------------------------------------------------------------------------------

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web. Returns the top results.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to look for"},
                "limit": {"type": "integer", "description": "How many results", "default": 3},
            },
            "required": ["query"],
        },
    },
}

TEXTS = {
    "ascii": ["Hello! How are you?", "I'm fine, thanks. What can I do for you?",
              "What is the capital of France?", "The capital of France is Paris."],
    "unicode": ["Grüß dich! ¿Qué tal? 你好，世界 🌍", "こんにちは — Привет! مرحبا 👋🏽",
                "Combining: e\u0301 a\u0308 — and ZWJ: 👩\u200d💻", "Ελληνικά και עברית; ok ✓"],
    "quotes": ["He said \"hi\" and it's fine \\ really", "Line one\nLine two\n\tTabbed",
               "Template-like text: {{ not_a_var }} {% if %} {# c #}", "  padded with spaces  \n"],
    "code": ["```python\ndef f(x):\n    return x * 2\n```", "Use `print(f(21))` to get 42.",
             "<b>html</b> & <i>entities</i> &amp; 1 < 2 > 0", "JSON: {\"a\": [1, 2.5, null]}"],
}


def conversation_variants():
    convs = []

    def add(name, messages, tools=None, documents=None, kwargs=None):
        convs.append({"name": name, "messages": messages, "tools": tools,
                      "documents": documents, "kwargs": kwargs or {}})

    for style, t in TEXTS.items():
        add(f"{style}-user", [{"role": "user", "content": t[0]}])
        add(f"{style}-system-user", [{"role": "system", "content": "You are terse."},
                                     {"role": "user", "content": t[0]}])
        add(f"{style}-two-turns", [{"role": "user", "content": t[0]},
                                   {"role": "assistant", "content": t[1]},
                                   {"role": "user", "content": t[2]}])
        add(f"{style}-system-three-turns", [
            {"role": "system", "content": t[3]},
            {"role": "user", "content": t[0]}, {"role": "assistant", "content": t[1]},
            {"role": "user", "content": t[2]}, {"role": "assistant", "content": t[3]}])
        add(f"{style}-assistant-last", [{"role": "user", "content": t[2]},
                                        {"role": "assistant", "content": t[3]}])
    add("empty-user", [{"role": "user", "content": ""}])
    add("empty-system", [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}])
    add("whitespace-content", [{"role": "user", "content": "   \n\t "},
                               {"role": "assistant", "content": " \n"},
                               {"role": "user", "content": "again"}])
    add("system-only", [{"role": "system", "content": "Only a system prompt."}])
    add("no-messages", [])
    add("long-chat", [m for i in range(6) for m in (
        {"role": "user", "content": f"Question number {i}: what is {i} + {i}?"},
        {"role": "assistant", "content": f"{i} + {i} = {2 * i}."})] +
        [{"role": "user", "content": "Thanks!"}])
    add("two-users-in-a-row", [{"role": "user", "content": "First."},
                               {"role": "user", "content": "Second."}])
    add("assistant-first", [{"role": "assistant", "content": "I start."},
                            {"role": "user", "content": "Ok."}])
    add("system-in-middle", [{"role": "user", "content": "Hi"},
                             {"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Now?"}])
    add("named-user", [{"role": "user", "content": "Hi there", "name": "alice"}])
    add("content-parts", [{"role": "user", "content": [
        {"type": "text", "text": "Describe this image:"}, {"type": "image"},
        {"type": "text", "text": " briefly."}]}])
    add("content-parts-system", [
        {"role": "system", "content": [{"type": "text", "text": "You see images."}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A cat."}]},
        {"role": "user", "content": [{"type": "text", "text": "Sure?"}]}])
    add("reasoning-content", [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4", "reasoning_content": "Two plus two is four."},
        {"role": "user", "content": "And 3+3?"}])
    add("think-tags", [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "<think>\nSimple sum.\n</think>\n\nIt is 4."},
        {"role": "user", "content": "Thanks"}])
    add("thinking-disabled", [{"role": "user", "content": "Quick answer please."}],
        kwargs={"enable_thinking": False})
    add("thinking-enabled", [{"role": "user", "content": "Think hard."}],
        kwargs={"enable_thinking": True})
    add("custom-kwargs", [{"role": "user", "content": "Hi"}],
        kwargs={"date_string": "01 Jan 2026", "custom_instructions": "Answer in French."})
    tool_call_dict = {"id": "call_abc123def", "type": "function",
                      "function": {"name": "get_weather",
                                   "arguments": {"city": "Paris", "unit": "celsius"}}}
    tool_call_str = {"id": "call_xyz987uvw", "type": "function",
                     "function": {"name": "search",
                                  "arguments": "{\"query\": \"best café in Zürich\", \"limit\": 2}"}}
    add("tools-available", [{"role": "user", "content": "What's the weather in Paris?"}],
        tools=[WEATHER_TOOL])
    add("tools-system", [{"role": "system", "content": "Use tools when useful."},
                         {"role": "user", "content": "Weather in Paris, and search cafés."}],
        tools=[WEATHER_TOOL, SEARCH_TOOL])
    add("tool-call-round", [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [tool_call_dict]},
        {"role": "tool", "tool_call_id": "call_abc123def", "name": "get_weather",
         "content": "{\"temperature\": 21.5, \"condition\": \"sunny\"}"},
        {"role": "assistant", "content": "It is sunny and 21.5 °C in Paris."}],
        tools=[WEATHER_TOOL])
    add("tool-call-pending", [
        {"role": "system", "content": "You can call tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [tool_call_dict]},
        {"role": "tool", "tool_call_id": "call_abc123def", "content": "21.5 degrees, sunny"}],
        tools=[WEATHER_TOOL])
    add("tool-call-string-args", [
        {"role": "user", "content": "Find a café in Zürich."},
        {"role": "assistant", "content": "Let me search.", "tool_calls": [tool_call_str]},
        {"role": "tool", "tool_call_id": "call_xyz987uvw", "name": "search",
         "content": "1. Café Sprüngli\n2. Café Odeon"},
        {"role": "assistant", "content": "Try Café Sprüngli."}],
        tools=[SEARCH_TOOL])
    add("parallel-tool-calls", [
        {"role": "user", "content": "Weather in Paris and Tokyo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            tool_call_dict,
            {"id": "call_tokyo00001", "type": "function",
             "function": {"name": "get_weather",
                          "arguments": {"city": "東京", "unit": "celsius", "days": 2,
                                        "precise": True, "ratio": 0.5, "extra": None}}}]},
        {"role": "tool", "tool_call_id": "call_abc123def", "content": "Paris: 21C"},
        {"role": "tool", "tool_call_id": "call_tokyo00001", "content": "Tokyo: 18C"},
        {"role": "user", "content": "Thanks, which is warmer?"}],
        tools=[WEATHER_TOOL, SEARCH_TOOL])
    add("tools-no-call", [{"role": "user", "content": "Just chat."},
                          {"role": "assistant", "content": "Sure!"},
                          {"role": "user", "content": "Ok."}], tools=[SEARCH_TOOL])
    add("empty-tools-list", [{"role": "user", "content": "Hi"}], tools=[])
    add("documents", [{"role": "user", "content": "Summarize the documents."}],
        documents=[{"title": "Doc A", "text": "Alpha is first."},
                   {"title": "Doc B", "text": "Beta follows alpha."}])
    add("emoji-heavy", [{"role": "user", "content": "🔥" * 5 + " 👨\u200d👩\u200d👧 🇫🇷"},
                        {"role": "assistant", "content": "😀 😃 😄"}])
    add("long-content", [{"role": "user", "content": ("Lorem ipsum dolor sit amet. " * 40).strip()}])
    add("control-chars", [{"role": "user", "content": "bell\x07 nul-free \x1b[31mred\x1b[0m \u2028sep"}])
    add("numbers-text", [{"role": "user", "content": "3.14 1e10 -7 0x1F 1_000"},
                         {"role": "assistant", "content": "Noted: 3.14, 1e10, -7."}])
    add("markdown-table", [{"role": "user", "content": "| a | b |\n|---|---|\n| 1 | 2 |\n"}])
    add("tool-call-no-id", [
        {"role": "user", "content": "Search for jinja."},
        {"role": "assistant", "content": "Searching.", "tool_calls": [
            {"type": "function", "function": {"name": "search", "arguments": {"query": "jinja"}}}]},
        {"role": "tool", "name": "search", "content": "Jinja is a template engine."}],
        tools=[SEARCH_TOOL])
    return convs


CONVERSATIONS = conversation_variants()


# ---- templates ----------------------------------------------------------------------------------

def smollm2_template(model_path):
    from gguf import GGUFReader
    reader = GGUFReader(model_path)

    def string_field(key):
        field = reader.fields[key]
        return bytes(field.parts[field.data[0]]).decode("utf-8")

    tokens = reader.fields["tokenizer.ggml.tokens"]

    def token(key):
        field = reader.fields[key]
        index = int(field.parts[field.data[0]][0])
        return bytes(tokens.parts[tokens.data[index]]).decode("utf-8")

    return [{"name": "smollm2", "origin": "bundled GGUF tokenizer.chat_template",
             "source": string_field("tokenizer.chat_template"),
             "bos_token": token("tokenizer.ggml.bos_token_id"),
             "eos_token": token("tokenizer.ggml.eos_token_id")}]


def pypi_templates(cache_dir):
    os.makedirs(cache_dir, exist_ok=True)
    out = []
    for spec in PYPI_PACKAGES:
        name, version = spec.split("==")
        wheels = glob.glob(os.path.join(cache_dir, f"{name}-{version}-*.whl"))
        if not wheels:
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--python-version", "3.12", "--only-binary=:all:", "-d", cache_dir,
                            spec], check=True)
            wheels = glob.glob(os.path.join(cache_dir, f"{name}-{version}-*.whl"))
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in sorted(wheel.namelist()):
                if member.endswith(".jinja"):
                    out.append({"name": f"{name}/{os.path.basename(member)[:-6]}",
                                "origin": f"{spec}: {member}",
                                "source": wheel.read(member).decode("utf-8"),
                                "bos_token": "<s>", "eos_token": "</s>"})
    return out


def own_templates():
    out = []
    for path in sorted(glob.glob(os.path.join(OWN_DIR, "*.jinja"))):
        with open(path, encoding="utf-8", newline="") as f:
            out.append({"name": "own/" + os.path.basename(path)[:-6],
                        "origin": os.path.relpath(path, os.path.dirname(HERE)),
                        "source": f.read(), "bos_token": "<s>", "eos_token": "</s>"})
    return out


# ---- rendering ----------------------------------------------------------------------------------

def continue_final_message(rendered, messages):
    """transformers' apply_chat_template(continue_final_message=True): cut the render right
    after the final message's text so the model continues it."""
    final_message = messages[-1]["content"]
    if isinstance(final_message, (list, tuple)):
        for block in reversed(final_message):
            if "text" in block:
                final_message = block["text"]
                break
        else:
            raise ValueError("continue_final_message is set but we could not find any text to "
                             "continue in the final message!")
    if final_message.strip() not in rendered:
        raise ValueError("continue_final_message is set but the final message does not appear in "
                         "the chat after applying the chat template! This can happen if the chat "
                         "template deletes portions of the final message. Please verify the chat "
                         "template and final message in your chat to ensure they are compatible.")
    location = rendered.rindex(final_message.strip())
    if rendered[location:location + len(final_message.lstrip())] == final_message:
        return rendered[:location + len(final_message.lstrip())]
    return rendered[:location + len(final_message.strip())]


def render_cases(env, template, full_text_limit):
    try:
        compiled = env.from_string(template["source"])
    except jinja2.exceptions.TemplateError as e:
        return {"compile_error": {"type": type(e).__name__, "message": str(e)}}
    cases = []
    for index, conv in enumerate(CONVERSATIONS):
        ends_with_assistant = bool(conv["messages"]) and conv["messages"][-1]["role"] == "assistant"
        for add_generation_prompt, cont in ((False, False), (True, False), (False, True)):
            if cont and not ends_with_assistant:
                continue
            case = {"conversation": index, "add_generation_prompt": add_generation_prompt}
            if cont:
                case["continue_final_message"] = True
            context = {"bos_token": template["bos_token"], "eos_token": template["eos_token"],
                       **conv["kwargs"]}
            try:
                text = compiled.render(messages=conv["messages"], tools=conv["tools"],
                                       documents=conv["documents"],
                                       add_generation_prompt=add_generation_prompt, **context)
                if cont:
                    text = continue_final_message(text, conv["messages"])
                if full_text_limit is None or index < full_text_limit:
                    case["output"] = text
                else:
                    data = text.encode("utf-8")
                    case["output_fnv1a64"] = fnv1a64(data)
                    case["output_bytes"] = len(data)
            except Exception as e:  # every template error is a vector too
                case["error"] = {"type": type(e).__name__, "message": str(e)}
            cases.append(case)
    return {"cases": cases}


# Malformed templates and template errors: (name, source, messages). Each records Python's
# exception type, message and the template line it points at.
ERROR_CASES = [
    ("unclosed-if", "{% if messages %}\nno end", []),
    ("unclosed-for", "{% for m in messages %}{{ m.role }}", []),
    ("unclosed-print", "hello {{ messages", []),
    ("unknown-tag", "line one\n{% frobnicate %}", []),
    ("stray-endfor", "{% if true %}{% endfor %}{% endif %}", []),
    ("unterminated-string", "{{ 'abc }}", []),
    ("unterminated-comment", "{# never closed", []),
    ("unterminated-raw", "{% raw %} never closed", []),
    ("unknown-filter", "a\nb\n{{ messages | nosuchfilter }}", []),
    ("unknown-test", "{% if messages is nosuchtest %}{% endif %}", []),
    ("bad-expression", "line1\nline2\n{{ (1 + }}", []),
    ("two-names", "{{ a b }}", []),
    ("bad-bracket", "{{ [1, 2 }}", []),
    ("empty-set", "{% set %}", []),
    ("default-before-required", "{% macro m(a=1, b) %}{% endmacro %}", []),
    ("dangling-operator", "{{ 1 + }}", []),
    ("else-without-if", "{% else %}", []),
    ("bad-char", "{{ 1 ? 2 }}", []),
    ("chained-is", "{{ 1 is odd is even }}", []),
    ("raise-exception", "{% if messages[0].role != 'system' %}{{ raise_exception('The first message must be a system message, got ' + messages[0].role) }}{% endif %}",
     [{"role": "user", "content": "hi"}]),
    ("raise-exception-line", "ok\n\n{%- for m in messages %}\n{%- if m.content is none %}\n{{- raise_exception('content missing in turn ' ~ loop.index) }}\n{%- endif %}\n{%- endfor %}",
     [{"role": "user", "content": "a"}, {"role": "assistant", "content": None}]),
    ("undefined-variable-attribute", "{{ nothing.attribute }}", []),
    ("undefined-attribute-chain", "{{ messages[0].content.foo.bar }}", [{"role": "user", "content": "x"}]),
    ("undefined-call", "{{ nothing() }}", []),
    ("none-method", "{{ none.foo() }}", []),
    ("str-plus-int", "{{ 'a' + 1 }}", []),
    ("int-plus-str", "{{ 1 + 'a' }}", []),
    ("list-plus-int", "{{ messages + 1 }}", []),
    ("division-by-zero", "{{ 1 / 0 }}", []),
    ("modulo-by-zero", "{{ 1 % 0 }}", []),
    ("iterate-int", "{% for x in 5 %}{% endfor %}", []),
    ("iterate-none", "{% for x in none %}{% endfor %}", []),
    ("unsafe-append", "{{ messages.append(1) }}", []),
    ("generator-length", "{{ messages | selectattr('role') | length }}", [{"role": "user", "content": "x"}]),
    ("order-str-int", "{{ 'a' < 1 }}", []),
    ("call-string", "{{ 'abc'() }}", []),
    ("macro-too-many-args", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(1, 2) }}", []),
    ("macro-unknown-kwarg", "{% macro m(a) %}{{ a }}{% endmacro %}{{ m(b=2) }}", []),
    ("range-too-big", "{{ range(200000) | length }}", []),
    ("tojson-undefined", "{{ [nothing] | tojson }}", []),
    ("namespace-assign-on-dict", "{% set d = {} %}{% set d.x = 1 %}", []),
    ("unpack-mismatch", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", []),
    ("int-filter-on-none-then-add", "{{ none + 1 }}", []),
    ("string-in-int", "{{ 1 in 'abc' }}", []),
    ("in-none", "{{ 'a' in none }}", []),
    ("negate-string", "{{ -'a' }}", []),
    ("split-empty-separator", "{{ 'abc'.split('') }}", []),
    ("list-index-missing", "{{ [1, 2].index(5) }}", []),
    ("dictsort-on-list", "{{ messages | dictsort }}", []),
    ("items-on-list", "{{ messages | items | list }}", []),
]


# Random expressions over a fixed vocabulary (literals bound to variables, so jinja2's
# compile-time constant folding does not change what runs), rendered by jinja2: a differential
# test of operators, filters, tests, methods, slicing and error messages.
EXPRESSION_LITERALS = [
    "1", "0", "-3", "2.5", "0.1", "1e3", "'a'", "'Hello World'", "''", "' x '", "none", "true",
    "false", "[1, 2, 3]", "[]", "['b', 'a']", "{'k': 1, 'j': [2]}", "{}", "(1, 'x')", "messages",
    "messages[0]", "messages[0].content", "messages[-1]['role']", "messages | length",
    "undefined_name", "'é ü ß'", "'a,b,,c'", "'<b>&\"x\"</b>'", "'it\\'s'"]
EXPRESSION_OPERATORS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=",
                        "and", "or", "in", "not in", "**"]
EXPRESSION_FILTERS = [
    "length", "upper", "lower", "trim", "string", "list", "first", "last", "reverse|list",
    "sort|list", "unique|list", "tojson", "tojson(indent=2)", "int", "float", "abs", "round",
    "title", "capitalize", "default('d')", "default('d', true)", "join(',')", "join", "count",
    "wordcount", "items|list", "dictsort", "sum", "min", "max", "batch(2)|list",
    "slice(2)|list", "indent(2)", "center(9)", "replace('a', 'b')", "truncate(5)",
    "map('string')|list", "select|list", "reject('odd')|list", "e", "safe", "escape|upper",
    "safe|trim", "e|reverse", "e|center(9)", "safe|indent(2)", "e|truncate(5)"]
EXPRESSION_TESTS = ["defined", "undefined", "none", "string", "number", "integer", "float",
                    "mapping", "iterable", "sequence", "boolean", "true", "false", "even", "odd",
                    "divisibleby 2", "eq 1", "in [1, 'a']", "callable"]
EXPRESSION_METHODS = [
    ".upper()", ".lower()", ".strip()", ".split()", ".split(',')", ".startswith('a')",
    ".endswith(('d', 'x'))", ".replace('l', 'L')", ".find('o')", ".count('l')", ".title()",
    ".capitalize()", ".items()|list", ".keys()|list", ".get('k')", ".get('z', 5)", "[1:]",
    "[::-1]", "[0]", "[-1]", "[1:3]", ".index(1)", ".isdigit()", ".rsplit(',', 1)"]
EXPRESSION_MESSAGES = [{"role": "user", "content": "Hello, world"},
                       {"role": "assistant", "content": "Hi"}]


def expression_vectors(env, count=2500, seed=20260314):
    rng = random.Random(seed)
    names = [f"v{i}" for i in range(len(EXPRESSION_LITERALS))]
    prelude = "".join(f"{{% set {n} = {l} %}}" for n, l in zip(names, EXPRESSION_LITERALS))

    def expr(depth=0):
        r = rng.random()
        if depth > 2 or r < 0.3:
            return rng.choice(names)
        if r < 0.5:
            return f"({expr(depth + 1)} {rng.choice(EXPRESSION_OPERATORS)} {expr(depth + 1)})"
        if r < 0.65:
            return f"({expr(depth + 1)} | {rng.choice(EXPRESSION_FILTERS)})"
        if r < 0.75:
            negation = "not " if rng.random() < 0.3 else ""
            return f"({expr(depth + 1)} is {negation}{rng.choice(EXPRESSION_TESTS)})"
        if r < 0.88:
            return f"{rng.choice(names)}{rng.choice(EXPRESSION_METHODS)}"
        if r < 0.94:
            return f"({expr(depth + 1)} if {expr(depth + 1)} else {expr(depth + 1)})"
        return f"(not {expr(depth + 1)})"

    cases = []
    for _ in range(count):
        expression = expr()
        source = prelude + "{{ " + expression + " }}"
        case = {"expression": expression}
        try:
            # A fresh copy: some filters mutate their input in Python (list += str).
            messages = json.loads(json.dumps(EXPRESSION_MESSAGES))
            case["output"] = env.from_string(source).render(
                messages=messages, tools=None, documents=None, add_generation_prompt=False)
        except Exception as e:
            case["error"] = {"type": type(e).__name__, "message": str(e)}
        text = json.dumps(case)
        # Python-only objects the interpreter does not model (see model/jinja/README.md).
        if "complex" in text or "j)" in text:
            continue
        cases.append(case)
    # Each case renders prelude + "{{ " + expression + " }}".
    return {"messages": EXPRESSION_MESSAGES, "prelude": prelude, "cases": cases}


def error_vectors(env):
    out = []
    for name, source, messages in ERROR_CASES:
        entry = {"name": name, "source": source, "messages": messages}
        try:
            compiled = env.from_string(source)
            entry["stage"] = "render"
            compiled.render(messages=messages, tools=None, documents=None,
                            add_generation_prompt=False, bos_token="<s>", eos_token="</s>")
            raise SystemExit(f"error case {name} rendered without an error")
        except jinja2.exceptions.TemplateSyntaxError as e:
            entry.update(stage="compile", type=type(e).__name__, message=e.message, line=e.lineno)
        except Exception as e:
            entry["stage"] = entry.get("stage", "compile")
            entry.update(type=type(e).__name__, message=str(e))
            frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "<template>"]
            entry["line"] = frames[-1].lineno if frames else 0
        out.append(entry)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=os.path.expanduser(
        "~/.cache/vllm-cpp/SmolLM2-135M-Instruct.Q4_1.gguf"))
    parser.add_argument("--wheel-cache", default=os.path.join(tempfile.gettempdir(),
                                                              "vllm-cpp-template-wheels"))
    args = parser.parse_args()
    os.makedirs(OUT_DIR, exist_ok=True)
    env = make_environment()
    with open(os.path.join(OUT_DIR, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump({"fixed_now": FIXED_NOW.isoformat(), "jinja2_version": jinja2.__version__,
                   "conversations": CONVERSATIONS}, f, ensure_ascii=False, indent=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        expressions = expression_vectors(env)
    with open(os.path.join(OUT_DIR, "expressions.json"), "w", encoding="utf-8") as f:
        json.dump(expressions, f, ensure_ascii=False, indent=0)
    print(f"expressions: {len(expressions['cases'])} cases")
    with open(os.path.join(OUT_DIR, "errors.json"), "w", encoding="utf-8") as f:
        json.dump({"cases": error_vectors(env)}, f, ensure_ascii=False, indent=1)
    groups = [("smollm2", smollm2_template(args.model), None),
              ("own", own_templates(), None),
              ("pypi", pypi_templates(args.wheel_cache), FULL_TEXT_CONVERSATIONS)]
    for group, templates, limit in groups:
        summary = {"rendered": 0, "errors": 0, "compile_errors": 0}
        for template in templates:
            template.update(render_cases(env, template, limit))
            if "compile_error" in template:
                summary["compile_errors"] += 1
            for case in template.get("cases", []):
                summary["errors" if "error" in case else "rendered"] += 1
        with open(os.path.join(OUT_DIR, f"templates_{group}.json"), "w", encoding="utf-8") as f:
            json.dump({"templates": templates}, f, ensure_ascii=False, indent=1)
        print(f"{group}: {len(templates)} templates, {summary}")


if __name__ == "__main__":
    main()
