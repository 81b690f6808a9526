"""A varied text corpus for exactness and bound tests: every item is a (name, text) pair."""

from __future__ import annotations

_CODE = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Foo(Bar):  # TODO: generics
    x: dict[str, list[int]] = {}
'''

_JS = "const f = async (x) => { await fetch(`/api/${x}?q=1&r=2`); return x ?? null; };\n" * 3

_JSON = '{"role": "user", "content": "Hi", "n": [1, 2, 3.5e-7, null, true], "nested": {"a": {}}}'

CORPUS: list[tuple[str, str]] = [
    ("empty", ""),
    ("one-char", "a"),
    ("english", "The quick brown fox jumps over the lazy dog. It's 9:45am, isn't it?"),
    ("python", _CODE),
    ("javascript", _JS),
    ("json", _JSON),
    ("cjk-ja", "お誕生日おめでとうございます。東京タワーは高さ333メートルです。"),
    ("cjk-zh", "我们今天去公园散步，天气非常好。人工智能正在改变世界。"),
    ("korean", "안녕하세요, 만나서 반갑습니다. 오늘 날씨가 좋네요."),
    ("emoji", "👍🏽 🇯🇵 👨‍👩‍👧‍👦 🎉🎉🎉 ❤️‍🔥 😀😃😄"),
    ("arabic-hebrew", "مرحبا بالعالم שלום עולם"),
    ("devanagari-thai", "नमस्ते दुनिया สวัสดีชาวโลก"),
    ("spaces-run", "a" + " " * 1000 + "b"),
    ("newline-run", "x\n\n\n\n\n\n\n\n\n\n\r\n\r\n\ty" + "\n" * 300),
    ("tabs-mixed", "\t \t  \t\t   \u00a0\u2003end   "),
    ("trailing-ws", "trailing spaces      "),
    ("repeated-a", "a" * 5000),
    ("repeated-emoji", "🙂" * 500),
    ("repeated-dot", "." * 777),
    ("digits", "3.14159265358979323846264338327950288419716939937510 1234567890 007"),
    ("special-like", "<|endoftext|> <|im_start|>user<|im_end|> <|begin_of_text|> [INST] </s> <s>"),
    ("special-fim", "<|fim_prefix|>x<|fim_suffix|>y<|fim_middle|><|endofprompt|>"),
    ("contractions", "I'LL you'VE they're we'd He'S don't SHOULDN'T"),
    ("urls", "https://example.com/a/b?c=d&e=f#g mailto:x@y.z ftp://h/"),
    ("math-symbols", "∀x∈ℝ: ∑_{i=1}^{n} x_i² ≤ ∫₀^∞ e^{-t} dt ≈ π/√2 ≠ ∞"),
    ("combining", "e\u0301 a\u0308 n\u0303 Z\u0351\u0300\u0301 ﬁ ﬂ Å Å"),
    ("mixed-case-long", "SupercalifragilisticexpialidociousANTIDISESTABLISHMENTARIANISM" * 4),
    (
        "base64",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    ),
    ("html", '<div class="x"><p>Hello&nbsp;<b>world</b></p><!-- c --></div>\n'),
    ("lone-surrogate-free-astral", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝓶𝓪𝓽𝓱 𐍈 𓀀"),
    ("control-chars", "a\x00b\x01c\x1bd\x7fe"),
    ("long-mixed", (_CODE + "お誕生日 👍🏽 " + " " * 37 + "<|endoftext|>\n") * 20),
]
