"""Attention alone, as in a decode step (a benchmark, not a test).

N sequences with one decode row each, at position P (reading P + 1
positions), over every layer of a model's shape: the keys and values of
all layers sit in the KV cache, so a pass reads them from memory as a
decode step does (SmolLM2: 30 layers x 16 sequences at 448 is 96 MB of a
q8_0 cache). `--layers 1` reuses one layer's cache, which stays in the CPU's
caches: the work without the memory. Prints the best and the median pass,
and the cache bytes read per second at the best.

    PYTHONPATH=python python bench/attention_bench.py [--shape smollm2] [--kv-type q8_0 f16] \\
        [--cases 16x448 8x1900] [--layers N] [--threads 2] [--iters 10]

The kernel set is the engine's (HEARTH_KERNELS=avx2 to pick one).
"""
import argparse
import statistics

from hearthlm import _core as core

# (layers, query heads, KV heads, head_dim)
SHAPES = {"smollm2": (30, 9, 3, 64), "qwen2.5-0.5b": (24, 14, 2, 64)}
BLOCK = 16  # positions per KV cache block


def block_bytes(kv, head_dim):
    """One block of one head's keys or values, as KVCache stores it (q8_0: a
    byte per value and an f16 scale per 32 values)."""
    per_value = {"f32": 4, "f16": 2, "q8_0": 1}[kv]
    scales = BLOCK * (head_dim // 32) * 2 if kv == "q8_0" else 0
    return BLOCK * head_dim * per_value + scales


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shape", choices=sorted(SHAPES), default="smollm2")
    p.add_argument("--kv-type", nargs="+", default=["q8_0"], choices=["f32", "f16", "q8_0"])
    p.add_argument("--cases", nargs="+", default=["16x448", "8x1900"], help="SEQSxPOSITION: sequences, and the position of each one's row")
    p.add_argument("--layers", type=int, help="layers in the cache (default: the shape's)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--iters", type=int, default=10)
    a = p.parse_args(argv)
    layers, n_head, n_head_kv, hd = SHAPES[a.shape]
    layers = a.layers or layers
    print(f"{a.shape}: {layers} layers, {n_head} heads, {n_head_kv} KV heads, head_dim {hd}; "
          f"{a.threads} threads, kernel set {core.kernel_name()}\n")
    print("| KV | sequences x position | best ms | median ms | GB/s at best |")
    print("|---|---|---|---|---|")
    for kv in a.kv_type:
        for case in a.cases:
            n, pos = (int(x) for x in case.split("x"))
            s = core.testing.bench_attention(kv, n, pos, layers, n_head, n_head_kv, hd, a.threads, a.iters)
            # whole blocks: attention scores and prefetches a block at a time
            nbytes = n * -(-(pos + 1) // BLOCK) * n_head_kv * 2 * block_bytes(kv, hd) * layers
            print(f"| {kv} | {n} x {pos} | {min(s) * 1e3:.2f} | {statistics.median(s) * 1e3:.2f} | "
                  f"{nbytes / min(s) / 1e9:.1f} |", flush=True)


if __name__ == "__main__":
    main()
