"""The per-layer profile: the table profile=1 prints, its report.json block and a PNG bar chart.

    rows = layer_rows(device_layers, graph)      # device_layers: AiRunner.invoke(..., profile=True)
    print(table(rows, unit="instructions"))
    block = report_block(rows, unit, total)      # -> report.json "profile"
    write_chart(rows, unit, "profile.png", title="cifar10 on mps2-an500")

A row is {"index", "kernel", "op", "op_index", "shape", "cycles", "share"}: the layer's generated
kernel, the TFLite operator it implements, that operator's output shape, the counter difference
over the layer and its share of the layers' sum (percent). Under QEMU with a cycle estimate
(tinykiln.cycles) a row also has "cycles_estimated" (add_estimate), shown as a column.
"""
from __future__ import annotations


def layer_rows(device_layers: list[dict], graph=None) -> list[dict]:
    """Rows from the device's per-layer counts, with output shapes from the graph IR if given."""
    total = sum(layer["cycles"] for layer in device_layers) or 1
    # ops by their index (the file's; ops the importer adds are numbered after them)
    ops = {op.index: op for op in graph.ops} if graph is not None else {}
    rows = []
    for index, layer in enumerate(device_layers):
        shape = None
        op = ops.get(layer["op_index"])
        if op is not None and op.outputs:
            shape = list(graph.tensor(op.outputs[0]).shape)
        rows.append({
            "index": index, "kernel": layer["kernel"], "op": layer["op"],
            "op_index": layer["op_index"], "shape": shape, "cycles": int(layer["cycles"]),
            "share": round(100.0 * layer["cycles"] / total, 2),
        })
    return rows


def add_estimate(rows: list[dict], estimated: list[int], core: str) -> None:
    """Each row's estimated cycles on `core` ("m4", "m7"), in layer order."""
    for row, value in zip(rows, estimated):
        row["cycles_estimated"] = int(value)
        row["cycles_estimated_core"] = core


def table(rows: list[dict], unit: str) -> str:
    """A fixed-width text table, a total line last."""
    estimated = bool(rows) and all("cycles_estimated" in r for r in rows)
    core = rows[0].get("cycles_estimated_core", "") if estimated else ""
    header = ("#", "kernel", "op", "output shape", unit, "share") + ((f"est. {core} cycles",) if estimated else ())
    body = [(str(r["index"]), r["kernel"], f'{r["op"]} (op {r["op_index"]})',
             "x".join(map(str, r["shape"])) if r["shape"] else "-", f'{r["cycles"]:,}',
             f'{r["share"]:.1f}%') + ((f'{r["cycles_estimated"]:,}',) if estimated else ()) for r in rows]
    total = sum(r["cycles"] for r in rows)
    body.append(("", "total", "", "", f"{total:,}", "100.0%")
                + ((f'{sum(r["cycles_estimated"] for r in rows):,}',) if estimated else ()))
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    right = {0, 4, 5, 6}

    def fmt(line):
        return "  ".join(cell.rjust(w) if i in right else cell.ljust(w)
                         for i, (cell, w) in enumerate(zip(line, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule] + [fmt(line) for line in body[:-1]] + [rule, fmt(body[-1])])


def report_block(rows: list[dict], unit: str, invoke_total: int | None) -> dict:
    """report.json's "profile": the rows, their sum and the whole invoke's count (the difference is
    the timing hooks' own cost and the code between layers)."""
    block = {"unit": unit, "layers": rows, "layers_total": sum(r["cycles"] for r in rows),
             "invoke_total": invoke_total}
    if rows and all("cycles_estimated" in r for r in rows):
        block["layers_cycles_estimated_total"] = sum(r["cycles_estimated"] for r in rows)
    return block


def write_chart(rows: list[dict], unit: str, path, title: str) -> None:
    """A horizontal bar chart, one bar per layer in execution order, labelled with op and share."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on a build machine
    import matplotlib.pyplot as plt

    labels = [f'{r["index"]}: {r["op"]} {"x".join(map(str, r["shape"] or []))}' for r in rows]
    values = [r["cycles"] for r in rows]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.32 * max(len(rows), 1)))
    bars = ax.barh(range(len(rows)), values, color="#c8553d")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()  # first layer on top
    ax.set_xlabel(unit)
    ax.set_title(title, fontsize=10)
    for bar, r in zip(bars, rows):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f' {r["share"]:.1f}%',
                va="center", fontsize=7)
    ax.margins(x=0.12)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
