#!/usr/bin/env python3
"""Records llama.cpp's logits and greedy continuations on the bundled SmolLM2 GGUF.

The C++ test tests/model/test_llama_reference.cpp compares vllm-cpp's forward pass with this
data, so CI never builds llama.cpp.

Like for like: vllm-cpp keeps K/V in fp32 and runs attention in fp32, so llama.cpp runs with
its KV cache in F32 (type_k = type_v = GGML_TYPE_F32; the default is F16, which rounds every
cached K/V value and the query to fp16) and flash attention disabled (KQ and KQV as fp32 matmuls,
softmax in fp32). Its matmuls quantize the activations to Q8_1/Q8_0 blocks exactly as vllm-cpp's
quantized kernel does. The settings are recorded in reference.json ("llama_cpp_settings"). The
default F16-KV configuration is also run and its distance from the F32-KV reference printed, for
information only. One thread: llama.cpp's results do not depend on the thread count (each output
element is computed by one thread), and one thread stays fast on a busy machine. Prompts are stored as llama.cpp's own token ids (the test
does not depend on our tokenizer). Written to tests/reference/data/llamacpp/:

  reference.json    model, llama.cpp version, per prompt: token ids, llama.cpp's argmax and
                    top-2 gap at the last prompt position, 32 greedy tokens and the top-2 logit
                    gap at each greedy step
  last_logits.f16   float16 little-endian [num_prompts, vocab]: last-position logits

Run (needs llama-cpp-python, `scripts/bootstrap --reference`):
  .venv/bin/python tests/reference/make_llamacpp_reference.py [--model PATH]
"""
import argparse
import hashlib
import json
import os
import pathlib

import numpy as np
from llama_cpp import GGML_TYPE_F16, GGML_TYPE_F32, Llama, __version__ as llama_cpp_version

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "data" / "llamacpp"
DEFAULT_MODEL = pathlib.Path(
    os.environ.get("VLLM_CPP_MODEL")
    or pathlib.Path(os.environ.get("VLLM_CPP_CACHE", pathlib.Path.home() / ".cache" / "vllm-cpp"))
    / "SmolLM2-135M-Instruct.Q4_1.gguf"
)
GREEDY_STEPS = 32

# Varied text: prose, lists, code, numbers, another language, chat markup. Prompts are windows of
# their tokenization, so lengths can be chosen freely.
TEXTS = [
    "The history of the printing press begins in the fifteenth century, when Johannes Gutenberg "
    "combined a screw press with movable metal type. Books became cheaper, literacy spread, and "
    "ideas travelled faster than ever before. Within fifty years, presses were operating in more "
    "than two hundred European cities, and millions of volumes had been printed.",
    "To bake a simple loaf of bread, mix 500 grams of flour, 10 grams of salt, 7 grams of yeast "
    "and 350 millilitres of warm water. Knead the dough for ten minutes, let it rise for an hour, "
    "shape it, let it rise again, and bake at 230 degrees Celsius for about thirty-five minutes.",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n"
    "    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n"
    "for i in range(10):\n    print(i, fibonacci(i))\n",
    "Photosynthesis is the process by which green plants use sunlight to turn carbon dioxide and "
    "water into glucose and oxygen. It takes place mainly in the chloroplasts of leaf cells, "
    "where the pigment chlorophyll absorbs red and blue light and reflects green light.",
    "Shopping list:\n1. Apples\n2. Milk\n3. Eggs\n4. Whole wheat bread\n5. Olive oil\n"
    "6. Tomatoes\n7. Rice\n8. Coffee beans\n",
    "La tour Eiffel a été construite pour l'Exposition universelle de 1889 à Paris. Elle mesure "
    "environ trois cents mètres et fut pendant quarante ans le plus haut monument du monde.",
    "Question: A train leaves the station at 3 pm travelling at 80 km/h. A second train leaves "
    "the same station at 4 pm travelling at 100 km/h on the same track. At what time does the "
    "second train catch up with the first?\nAnswer: Let t be the hours after 4 pm.",
    "In mathematics, a prime number is a natural number greater than 1 that is not a product of "
    "two smaller natural numbers. The first primes are 2, 3, 5, 7, 11, 13, 17, 19, 23 and 29. "
    "Euclid proved that there are infinitely many primes.",
    "SELECT customers.name, COUNT(orders.id) AS order_count\nFROM customers\n"
    "LEFT JOIN orders ON orders.customer_id = customers.id\nGROUP BY customers.name\n"
    "ORDER BY order_count DESC\nLIMIT 10;",
    "Once upon a time, in a small village at the edge of a great forest, there lived an old "
    "clockmaker who could repair any clock in the world. One winter evening a stranger knocked "
    "on his door carrying a clock that ran backwards.",
]
CHAT = (
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n"
)
CHAT_QUESTIONS = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain in two sentences why the sky is blue.",
    "List three uses of a paperclip.",
    "How many legs does a spider have?",
]
# Window lengths for the plain-text prompts (tokens); chat prompts add their own lengths.
LENGTHS = [5, 7, 9, 12, 16, 20, 24, 31, 40, 48, 57, 64, 80, 96, 113, 128, 150, 175, 200, 230,
           256, 300, 350, 400, 450, 500]


def last_logits(llm):
    # llama-cpp-python 0.3.x keeps no scores without logits_all: read the context's output row
    # of the last evaluated token directly.
    row = llm._ctx.get_logits_ith(-1)
    return np.ctypeslib.as_array(row, shape=(llm.n_vocab(),)).astype(np.float32).copy()


def top2_gap(logits):
    top = np.partition(logits, -2)[-2:]
    return float(top[1] - top[0])


SETTINGS = {"n_ctx": 1024, "n_batch": 512, "n_threads": 1, "n_threads_batch": 1, "seed": 0,
            "flash_attn": False, "type_k": GGML_TYPE_F32, "type_v": GGML_TYPE_F32}


def run(llm, tokens):
    """llama.cpp's last-position logits and GREEDY_STEPS greedy tokens with their top-2 gaps."""
    llm.reset()
    llm.eval(tokens)
    logits = last_logits(llm)
    first = logits
    greedy, gaps = [], []
    for _ in range(GREEDY_STEPS):
        token = int(np.argmax(logits))
        greedy.append(token)
        gaps.append(top2_gap(logits))
        llm.eval([token])
        logits = last_logits(llm)
    return first, greedy, gaps


def cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=pathlib.Path, default=DEFAULT_MODEL)
    parser.add_argument("--skip-f16-kv", action="store_true",
                        help="do not run the informational F16-KV comparison")
    args = parser.parse_args()

    llm = Llama(model_path=str(args.model), verbose=False, **SETTINGS)
    vocab = llm.n_vocab()

    corpus = llm.tokenize("\n\n".join(TEXTS * 3).encode(), add_bos=False, special=False)
    prompts = []
    for i, length in enumerate(LENGTHS):
        start = (i * 37) % (len(corpus) - length)  # windows from different places
        prompts.append(("text", corpus[start:start + length]))
    for question in CHAT_QUESTIONS:
        prompts.append(("chat", llm.tokenize(CHAT.format(question).encode(), add_bos=False,
                                             special=True)))

    records = []
    all_last_logits = np.zeros((len(prompts), vocab), dtype=np.float32)
    for index, (kind, tokens) in enumerate(prompts):
        assert 5 <= len(tokens) <= 500, len(tokens)
        logits, greedy, gaps = run(llm, tokens)
        all_last_logits[index] = logits
        records.append({"kind": kind, "prompt_token_ids": [int(t) for t in tokens],
                        "last_argmax": int(np.argmax(logits)), "last_top2_gap": top2_gap(logits),
                        "greedy_token_ids": greedy, "greedy_top2_gaps": gaps})
        print(f"prompt {index:2d}: {len(tokens):3d} tokens, gap {top2_gap(logits):.3f}")

    if not args.skip_f16_kv:
        # For information: llama.cpp's default F16 KV cache against its own F32-KV run.
        del llm
        f16 = Llama(model_path=str(args.model), verbose=False,
                    **{**SETTINGS, "type_k": GGML_TYPE_F16, "type_v": GGML_TYPE_F16})
        cosines, identical = [], 0
        for index, (_, tokens) in enumerate(prompts):
            logits, greedy, _ = run(f16, tokens)
            cosines.append(cosine(logits, all_last_logits[index]))
            identical += greedy == records[index]["greedy_token_ids"]
        print(f"F16 KV vs F32 KV (information): last-position cosine min {min(cosines):.6f}, "
              f"mean {np.mean(cosines):.6f}; all {GREEDY_STEPS} greedy tokens identical on "
              f"{identical} of {len(prompts)} prompts")

    OUT.mkdir(parents=True, exist_ok=True)
    all_last_logits.astype("<f2").tofile(OUT / "last_logits.f16")
    digest = hashlib.sha256(args.model.read_bytes()).hexdigest()
    meta = {"model": args.model.name, "model_sha256": digest,
            "llama_cpp_python": llama_cpp_version, "vocab_size": vocab,
            "llama_cpp_settings": {**SETTINGS, "type_k": "F32", "type_v": "F32"},
            "greedy_steps": GREEDY_STEPS, "logits_file": "last_logits.f16",
            "prompts": records}
    (OUT / "reference.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {len(records)} prompts to {OUT}")


if __name__ == "__main__":
    main()
