"""Edits of scheduled PrimFuncs that TVM's schedule primitives do not offer: a scratch param scheduled as a
temporary and back (param_to_alloc, alloc_to_param), the iter vars rolling_buffer leaves opaque made
spatial again (unmark_opaque), a rolling buffer deepened to a power of two (widen_rolling).
"""
from __future__ import annotations


def _with_root(func, params, alloc_buffers):
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize

    realize = func.body
    root = realize.block
    block = SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, root.body, root.init,
                   alloc_buffers, root.match_buffers, root.annotations)
    return tirx.PrimFunc(params, SBlockRealize(realize.iter_values, realize.predicate, block),
                         ret_type=func.ret_type, attrs=func.attrs)


def param_to_alloc(func, name):
    """`func` with its buffer param `name` turned into a buffer allocated in the root block, and the
    param's position. A scratch param is an output of the TE compute, and TVM's schedule does not
    compute_at an output block; as a temporary it can be computed per tile (and re-shaped by
    transform_layout to one tile's size). alloc_to_param puts it back."""
    index = next(i for i, p in enumerate(func.params) if p.name == name)
    params = [p for i, p in enumerate(func.params) if i != index]
    return _with_root(func, params, [*func.body.block.alloc_buffers, func.params[index]]), index


def alloc_to_param(func, name, index):
    """Undo param_to_alloc: the root block's buffer `name` becomes param number `index` again."""
    allocs = list(func.body.block.alloc_buffers)
    buffer = next(b for b in allocs if b.name == name)
    params = list(func.params)
    params.insert(index, buffer)
    return _with_root(func, params, [b for b in allocs if not b.same_as(buffer)])


def unmark_opaque(func, keep):
    """rolling_buffer marks the rolling loop's block iter vars opaque in every block under it (so no
    later schedule step reorders that loop); once scheduling is done, make them spatial again in
    the blocks other than `keep`: lowering only shrinks a block's temporaries (the accumulators) to
    one tile when its iter vars are not opaque."""
    import tvm_ffi
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock

    def fix(block):
        if block.name_hint == keep or not any(v.iter_type == tirx.IterVar.Opaque for v in block.iter_vars):
            return block
        iter_vars = [tirx.IterVar(v.dom, v.var, tirx.IterVar.DataPar if v.iter_type == tirx.IterVar.Opaque
                                  else v.iter_type, v.thread_tag) for v in block.iter_vars]
        return SBlock(iter_vars, block.reads, block.writes, block.name_hint, block.body, block.init,
                      block.alloc_buffers, block.match_buffers, block.annotations)

    return tvm_ffi.structural_map(func, (SBlock, fix), order="post")


def widen_rolling(func, name, rows, axis=1):
    """Make the rolling buffer param `name` (rolling_buffer folded axis `axis` to `rows` rows, row r in
    slot r % rows) `pow2_at_least(rows)` rows deep, row r in slot r % that: the same rolling buffer
    (a slot is overwritten only by a row at least that many rows later, after every window that
    reads the older row), but the slot is a mask instead of a division where the consumer computes it
    per call."""
    import tvm
    import tvm_ffi
    from tvm import tirx

    deep = pow2_at_least(rows)
    if deep == rows:
        return func
    old = next(p for p in func.params if p.name == name)
    shape = list(old.shape)
    shape[axis] = deep
    new = tirx.decl_buffer(shape, old.dtype, name)

    def slot(index):
        if isinstance(index, tirx.FloorMod) and isinstance(index.b, tirx.IntImm) and index.b.value == rows:
            return tirx.floormod(index.a, deep)
        raise AssertionError(f"{name}: rolling index {index} is not (row % {rows})")

    def indices(values):
        return [slot(v) if i == axis else v for i, v in enumerate(values)]

    def load(node):
        return tirx.BufferLoad(new, indices(node.indices)) if node.source.same_as(old) else node

    def store(node):
        return tirx.BufferStore(new, node.value, indices(node.indices)) if node.buffer.same_as(old) else node

    def region(node):
        if not node.source.same_as(old):
            return node
        ranges = [tvm.ir.Range.from_min_extent(slot(r.min), r.extent) if i == axis else r
                  for i, r in enumerate(node.region)]
        return tirx.BufferRegion(new, ranges)

    params = [new if p.same_as(old) else p for p in func.params]
    body = tvm_ffi.structural_map(func.body, [(tvm.ir.TensorLoad, load), (tirx.BufferStore, store),
                                              (tvm.ir.TensorRegion, region)], order="post")
    return tirx.PrimFunc(params, body, ret_type=func.ret_type, attrs=func.attrs)


def pow2_at_least(n: int) -> int:
    return 1 << (n - 1).bit_length()
