"""The KV cache's block tables (engine/kv_cache_manager.h) on a pool of
their own: sequences grow block by block, forks share blocks until one
writes (copy on write keeps the other's contents), full blocks enter the
prefix cache and stay after their last user (evicted least recently freed
first), and every block comes back."""

import pytest

from hearthlm import _core

B = _core.testing.KVCacheManager.block_tokens


def manager(n_blocks, prefix_caching=True):
    return _core.testing.KVCacheManager(n_blocks, prefix_caching)


def test_a_sequence_grows_block_by_block_and_gives_every_block_back():
    m = manager(8)
    s = m.new_sequence()
    assert m.allocate(s, 0, 1) and len(m.blocks(s)) == 1
    assert m.allocate(s, 1, B) and len(m.blocks(s)) == 1
    assert m.allocate(s, B, B + 1) and len(m.blocks(s)) == 2
    assert m.n_used == 2
    m.free(s)
    assert m.n_free == 8 and m.n_used == 0


def test_allocation_beyond_the_pool_fails_and_changes_nothing():
    m = manager(3)
    s = m.new_sequence()
    assert m.allocate(s, 0, 2 * B)
    assert m.blocks_needed(s, 2 * B, 4 * B) == 2
    assert not m.allocate(s, 2 * B, 4 * B)
    assert len(m.blocks(s)) == 2 and m.n_free == 1
    m.free(s)
    assert m.n_free == 3


def test_a_fork_shares_blocks_and_copies_the_one_it_writes():
    m = manager(8)
    parent = m.new_sequence()
    assert m.allocate(parent, 0, B + 3)  # one full block, one partly filled
    full, partial = m.blocks(parent)
    for slot in range(3):
        m.write(partial, slot, 10.0 + slot)
    child = m.fork(parent)
    assert m.blocks(child) == [full, partial] and m.refcount(partial) == 2
    # the child writes position B + 3: the partly filled block becomes its own copy
    assert m.blocks_needed(child, B + 3, B + 4) == 1
    assert m.allocate(child, B + 3, B + 4)
    copy = m.blocks(child)[1]
    assert copy != partial and m.blocks(child)[0] == full
    assert [m.read(copy, i) for i in range(3)] == [10.0, 11.0, 12.0]
    m.write(copy, 3, 99.0)
    m.write(partial, 3, -1.0)
    assert m.read(copy, 3) == 99.0 and m.read(partial, 3) == -1.0
    assert m.refcount(full) == 2 and m.refcount(partial) == 1
    # the last holder of a block writes in place
    assert m.blocks_needed(parent, B + 3, B + 4) == 0
    m.free(parent)
    assert m.refcount(full) == 1
    m.free(child)
    assert m.n_free == 8


def test_full_blocks_are_found_again_after_their_sequence_is_freed():
    m = manager(8)
    tokens = list(range(100, 100 + 3 * B + 5))
    a = m.new_sequence()
    assert m.allocate(a, 0, len(tokens))
    m.cache_blocks(a, tokens, len(tokens))
    blocks = m.blocks(a)
    assert [m.is_cached(b) for b in blocks] == [True, True, True, False]  # the partly filled one is not
    m.free(a)
    assert m.n_free == 8  # cached blocks are free (evictable)
    b = m.new_sequence()
    # at most len - 1 tokens: whole blocks only
    assert m.take_cached_prefix(b, tokens, len(tokens) - 1) == 3 * B
    assert m.blocks(b) == blocks[:3] and m.n_used == 3
    # a different first block changes the identity of every later one
    c = m.new_sequence()
    other = [7] + tokens[1:]
    assert m.take_cached_prefix(c, other, len(other) - 1) == 0
    m.free(b)
    m.free(c)
    assert m.n_free == 8


def test_the_same_tokens_after_another_prefix_are_not_a_hit():
    m = manager(8)
    first = list(range(2 * B))
    a = m.new_sequence()
    assert m.allocate(a, 0, 2 * B)
    m.cache_blocks(a, first, 2 * B)
    m.free(a)
    shifted = list(range(1000, 1000 + B)) + first[B:]  # second block's tokens, after another first block
    b = m.new_sequence()
    assert m.take_cached_prefix(b, shifted, 2 * B) == 0
    m.free(b)


def test_eviction_takes_the_least_recently_freed_block_first():
    m = manager(4)
    t1, t2 = list(range(B)), list(range(B, 2 * B))
    for toks in (t1, t2):
        s = m.new_sequence()
        assert m.allocate(s, 0, B)
        m.cache_blocks(s, toks, B)
        m.free(s)
    # two never-used blocks are handed out first, then the block of t1 (freed first)
    s = m.new_sequence()
    assert m.allocate(s, 0, 3 * B)
    probe = m.new_sequence()
    assert m.take_cached_prefix(probe, t1 + [0], B) == 0  # evicted
    assert m.take_cached_prefix(m.new_sequence(), t2 + [0], B) == B  # still there


def test_a_sequence_takes_its_new_blocks_in_ascending_order():
    # a freed sequence's cached blocks go back last one first (its tail is
    # evicted first); whoever takes several of them gets them in ascending
    # order, which attention reads as one stream of memory
    m = manager(8)
    tokens = list(range(4 * B))
    a = m.new_sequence()
    assert m.allocate(a, 0, 4 * B)
    m.cache_blocks(a, tokens, 4 * B)
    a_blocks = m.blocks(a)
    m.free(a)
    b = m.new_sequence()
    assert m.allocate(b, 0, 5 * B)  # the 4 never-used blocks, then a's last (evicted first)
    assert a_blocks[3] in m.blocks(b) and m.blocks(b) == sorted(m.blocks(b))
    c = m.new_sequence()
    assert m.allocate(c, 0, 2 * B)  # two more of a's, handed out last one first: a_blocks[2], then [1]
    assert m.blocks(c) == [a_blocks[1], a_blocks[2]]
    assert m.take_cached_prefix(m.new_sequence(), tokens, B) == B  # a's first block, evicted last, is still there


def test_without_prefix_caching_nothing_is_found():
    m = manager(4, prefix_caching=False)
    tokens = list(range(2 * B))
    a = m.new_sequence()
    assert m.allocate(a, 0, 2 * B)
    m.cache_blocks(a, tokens, 2 * B)
    m.free(a)
    assert m.take_cached_prefix(m.new_sequence(), tokens, 2 * B) == 0


def test_unknown_sequences_are_refused():
    m = manager(2)
    with pytest.raises(ValueError, match="sequence 5 does not exist"):
        m.blocks_needed(5, 0, 1)


def test_blocks_that_hold_nothing_cached_are_reused_before_untouched_ones():
    # resident memory grows only as far as blocks are used: a pool of 64
    # blocks that serves one short sequence after another keeps to the same few
    m = manager(64, prefix_caching=False)
    seen = set()
    for _ in range(10):
        s = m.new_sequence()
        assert m.allocate(s, 0, 2 * B + 1)
        seen.update(m.blocks(s))
        m.free(s)
    assert len(seen) == 3


def test_the_attention_benchmark_hook_runs_on_every_cache_type_and_refuses_bad_sizes():
    # bench/attention_bench.py's hook: one pass per iteration, nothing timed here
    for kv in ("f32", "f16", "q8_0"):
        seconds = _core.testing.bench_attention(kv, 2, 40, 2, 4, 2, 64, n_threads=2, iters=3)
        assert len(seconds) == 3
    with pytest.raises(_core.HearthError, match="multiple of n_head_kv"):
        _core.testing.bench_attention("f16", 1, 10, 1, 3, 2, 64)
    with pytest.raises(_core.HearthError, match="kv_type must be"):
        _core.testing.bench_attention("q4_0", 1, 10, 1, 4, 2, 64)
    # sizes whose block arithmetic would overflow: refused before any memory is asked for
    with pytest.raises(_core.HearthError, match=r"positions must be in \[0, 2\^24\), got 16777216"):
        _core.testing.bench_attention("q8_0", 1, 1 << 24, 1, 4, 2, 64)
    with pytest.raises(_core.HearthError, match="block ids"):
        _core.testing.bench_attention("q8_0", 1 << 30, 100, 1, 4, 2, 64)
