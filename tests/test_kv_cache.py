"""The paged KV cache: blocks from one pool, a block table per sequence,
forks that share blocks and copy a shared block only when written (what beam
search and batching build on), and clear errors when the pool runs out."""

import numpy as np
import pytest

from hearthlm import HearthError, _core

B = _core.KVCache.block_tokens


def make(kv_type="f32", n_blocks=8):
    return _core.KVCache(n_layers=2, n_kv_heads=2, head_dim=8, kv_type=kv_type, n_blocks=n_blocks)


def vec(seed):
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


def test_blocks_are_taken_as_the_sequence_grows_and_returned_on_clear():
    c = make()
    s = c.new_sequence()
    c.grow(s, 1)
    assert len(c.blocks(s)) == 1 and c.free_blocks == 7
    c.grow(s, B)  # 1 + B positions need two blocks
    assert len(c.blocks(s)) == 2 and c.length(s) == B + 1
    c.clear(s)
    assert c.free_blocks == 8 and c.length(s) == 0


@pytest.mark.parametrize("kv_type", ["f32", "f16"])
def test_values_read_back_as_written(kv_type):
    c = make(kv_type)
    s = c.new_sequence()
    c.grow(s, 2 * B + 3)
    for pos in (0, B - 1, B, 2 * B + 2):
        c.write(s, 1, pos, 1, 0, vec(pos))
        c.write(s, 1, pos, 1, 1, -vec(pos))
    for pos in (0, B - 1, B, 2 * B + 2):
        tol = 0 if kv_type == "f32" else 1e-3
        np.testing.assert_allclose(c.read(s, 1, pos, 1, 0), vec(pos), atol=tol)
        np.testing.assert_allclose(c.read(s, 1, pos, 1, 1), -vec(pos), atol=tol)


def test_fork_shares_blocks_and_copies_a_shared_block_only_on_write():
    c = make()
    parent = c.new_sequence()
    c.grow(parent, B + 4)  # one full block, one partly filled
    for pos in range(B + 4):
        c.write(parent, 0, pos, 0, 0, vec(pos))
    child = c.fork(parent)
    assert c.blocks(child) == c.blocks(parent) and c.free_blocks == 6  # nothing copied

    c.grow(child, 1)  # the child writes into the shared, partly filled block
    assert c.blocks(child)[0] == c.blocks(parent)[0]  # the full block stays shared
    assert c.blocks(child)[1] != c.blocks(parent)[1]  # the written one was copied
    assert c.free_blocks == 5
    c.write(child, 0, B + 4, 0, 0, vec(99))
    c.write(child, 0, B + 1, 0, 0, vec(77))  # overwrite inside the copy
    np.testing.assert_array_equal(c.read(parent, 0, B + 1, 0, 0), vec(B + 1))  # parent untouched
    np.testing.assert_array_equal(c.read(child, 0, B + 2, 0, 0), vec(B + 2))  # copy kept the prefix
    np.testing.assert_array_equal(c.read(child, 0, 0, 0, 0), vec(0))

    c.free_sequence(parent)  # the shared block stays with the child
    assert c.free_blocks == 6
    np.testing.assert_array_equal(c.read(child, 0, 3, 0, 0), vec(3))
    c.free_sequence(child)
    assert c.free_blocks == 8


def test_truncate_returns_whole_blocks_past_the_new_end():
    c = make()
    s = c.new_sequence()
    c.grow(s, 3 * B)
    c.truncate(s, B + 1)
    assert c.length(s) == B + 1 and len(c.blocks(s)) == 2 and c.free_blocks == 6


def test_full_pool_is_a_clear_error_and_leaves_the_sequence_as_it_was():
    c = make(n_blocks=2)
    s = c.new_sequence()
    c.grow(s, B)
    with pytest.raises(HearthError, match="KV cache is full"):
        c.grow(s, 2 * B)
    assert c.length(s) == B and c.free_blocks == 1
