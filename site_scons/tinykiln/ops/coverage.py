"""What tinykiln compiles, as a table made from the op registry (the README's table is this module's
output, and tests/unit/test_coverage_table.py keeps the two equal), and what it rejects, and why.

    python -m tinykiln.ops.coverage            the table as markdown (also `./kiln ops`)
    python -m tinykiln.ops.coverage --readme   rewrite the README's table in place

REJECTED is the list of model features the importer refuses on purpose: each rejection message names
one of them, and each has a way out for the user.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .registry import OPS
from .reshape import lower_alias

# (feature, why it is refused, the way out)
REJECTED = (
    ("custom ops other than TFLite_Detection_PostProcess", "their code is not in the model file",
     "replace them with builtin ops when converting"),
    ("dynamic shapes", "the memory plan and the kernels are fixed at build time",
     "export with a fixed input shape (batch 1)"),
    ("several subgraphs", "control flow (WHILE, IF) and multi-signature models need an interpreter",
     "convert one signature without control flow"),
    ("hybrid (dynamic-range) quantization", "float activations with int8 weights are neither float32 "
     "nor int8 arithmetic", "quantize fully with a representative dataset, or keep float32"),
    ("int16 activations (16x8 quantization)", "not yet implemented", "quantize to int8 activations"),
    ("recurrent LSTM layers and resource variables (VAR_HANDLE, READ_VARIABLE, ASSIGN_VARIABLE, CALL_ONCE)",
     "not yet implemented (variable tensors and SVDF are)",
     "keep the state in variable tensors, or unroll the recurrence out of the model"),
    ("sparse tensors", "the kernels read dense weights", "densify the model when converting"),
    ("float16 activations", "Cortex-M cores have no float16 arithmetic", "convert to float32 or int8"),
)

BEGIN = "<!-- op table: made by ./kiln ops --readme from the op registry; do not edit by hand -->"
END = "<!-- end of op table -->"


def _dtypes(support) -> str:
    pairs = support.dtypes
    if all(i == o for i, o in pairs):
        return ", ".join(i for i, _ in pairs)
    return ", ".join(f"{i} → {o}" for i, o in pairs)


def _how(support) -> str:
    if support.lower is lower_alias:
        return "no kernel (the output aliases the input's bytes)"
    if support.custom:
        return ("custom op (uint8 or float32 in the file): TVM-generated decoding, hand-written NMS "
                "(runtime/kernels/tk_mk_detect.h)")
    return "TVM-generated kernel"


def table() -> str:
    lines = ["| op | dtypes | how |", "|---|---|---|"]
    lines += [f"| `{kind}` | {_dtypes(OPS[kind])} | {_how(OPS[kind])} |" for kind in sorted(OPS)]
    lines += ["", "Rejected, with the reason in the error message:", ""]
    lines += [f"- **{feature}**: {why}; {way_out}." for feature, why, way_out in REJECTED]
    return "\n".join(lines)


def readme_section() -> str:
    return f"{BEGIN}\n{table()}\n{END}"


def replace_in(text: str) -> str:
    """`text` (the README) with its op table replaced by the registry's."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no op table between {BEGIN!r} and {END!r}")
    return text[:start] + readme_section() + text[end + len(END):]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="kiln ops", description="the ops tinykiln compiles")
    parser.add_argument("--readme", action="store_true", help="rewrite the table in README.md")
    args = parser.parse_args(argv)
    if args.readme:
        readme = Path(__file__).resolve().parents[3] / "README.md"
        readme.write_text(replace_in(readme.read_text()))
        print(f"kiln: op table written to {readme}")
    else:
        print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
