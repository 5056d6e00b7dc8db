"""SCons tool `kiln_model`: model= -> generated C -> firmware, and validate=1.

    env.Tool("kiln_model")
    fw = env.KilnModel("cifar10")          # or a path to a .tflite; returns KilnFirmware's nodes

What it builds, under build/<board>/<variant>/<model>/ (each file its own target):

    kernels/<tk_family_hash>.c   one per distinct kernel spec (TVM codegen). Depends on the spec's
                                 canonical text (op, shapes, quantization, knobs, tool versions) and
                                 on the sources of its op family, nothing else: a changed layer
                                 regenerates its kernel only; identical layers share one file.
    gen/model.c, model.h, weights.c, tk_models.c
                                 the AOT model (tinykiln.aot) with the static arena plan; depend on
                                 the digest of their own text.
    <model>.elf, report.json     linked by KilnFirmware with the app (default validation, whose
                                 app.toml adds runtime/protocol) and runtime/ai; report.json gains
                                 "model" and "memory" blocks.

The model is imported, lowered and planned while SConstruct is read (that is how SCons learns the
kernel files); the generation itself runs as build actions. Kernel generation runs one at a time
(TVM is not used from several threads at once).

validate=1 [n=10] [seed=]: after the build, run the firmware (board=host: a process on a pipe), feed
it n seeded random inputs plus the model's sample inputs, compare every output with LiteRT's
reference kernels, print one verdict line, merge "validation" into report.json. A failed validation
fails the build.
"""
import hashlib
import inspect
import json
import sys
from pathlib import Path

import SCons.Errors
from SCons.Script import Action

from kiln import kiln_action  # noqa: E402  (sibling tool, loaded first)

from tinykiln import KilnError, aot, memplan, models, report

# What every firmware with a model needs; an app adds its own parts (validation: the protocol) in
# its app.toml.
RUNTIME_SOURCES = ["runtime/ai/ai_runtime.c"]
RUNTIME_INCLUDES = ["#runtime/ai"]


def _kernel_action(spec):
    @kiln_action
    def generate(target, source, env):
        from tinykiln import codegen

        Path(target[0].abspath).write_text(codegen.kernel_c(spec))
        return 0

    return generate


def _text_action(text):
    @kiln_action
    def write(target, source, env):
        Path(target[0].abspath).write_text(text)
        return 0

    return write


def _family_sources(spec) -> list[str]:
    """The Python files whose change can change this kernel's C: its family module, the shared
    lowering/codegen code."""
    from tinykiln import codegen, ops, quant

    files = {inspect.getsourcefile(ops.kernel_family(spec.family).compute),
             inspect.getsourcefile(codegen), inspect.getsourcefile(quant),
             str(Path(inspect.getsourcefile(ops)).with_name("base.py"))}
    return sorted(f for f in files if f)


def _model_report_action(model, lowered, plan, result, kernel_names, report_path):
    """The post-link step that adds "model" and "memory" to report.json. It closes over plain strings
    only: SCons signs an action by its code and closure, and a stable signature means no relink."""
    model_json = json.dumps({
        "name": model.name, "path": str(model.path), "c_name": model.c_name,
        "build_id": result.build_id, "layers": len(lowered.calls), "kernels": len(kernel_names),
    }, sort_keys=True)
    memory_json = json.dumps(report.memory_block(plan, result.weights_bytes, None), sort_keys=True)
    kernels = tuple(kernel_names)
    c_name = model.c_name

    @kiln_action
    def add_model_report(target, source, env):
        block = json.loads(memory_json)
        block["code_bytes"] = report.function_bytes(str(target[0]), list(kernels), c_name)
        info = json.loads(model_json)
        report.merge(report_path, model=info, memory=block)
        print(f"model {info['name']}: arena {block['arena_bytes']} B (lower bound "
              f"{block['arena_lower_bound']} B), weights {block['weights_bytes']} B, code "
              f"{block['code_bytes']} B in {len(kernels)} kernels")
        return 0

    return add_model_report


def _schedule_knobs(model, board_name):
    """models/<name>/schedules/<board>.json from tuning, if any."""
    if model.directory is None:
        return None
    path = model.directory / "schedules" / f"{board_name}.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise KilnError(f"{path}: not valid JSON ({e}): fix it or delete it to use default schedules")


def _kiln_model(env, spec_text, app="validation"):
    from tinykiln import ops, tflite

    root = env["KILN_ROOT"]
    target = env["KILN_TARGET"]
    model = models.resolve(root, spec_text)
    graph = tflite.load(str(model.path))
    graph.name = model.name
    lowered = ops.lower(graph, _schedule_knobs(model, target.board.name))
    plan = memplan.plan(graph, lowered)
    result = aot.generate(graph, lowered, plan, model.name, source_digest=model.digest())

    outdir = env["KILN_BUILD_DIR"].Dir(model.name)
    kernel_dir = outdir.Dir("kernels")
    gen_dir = outdir.Dir("gen")

    kernels = {}
    for call in lowered.calls:
        spec = call.spec
        if spec.function_name in kernels:
            continue
        node = env.Command(kernel_dir.File(f"{spec.function_name}.c"), env.Value(spec.canonical()),
                           Action(_kernel_action(spec), f"TVM {spec.function_name}.c"))
        env.Depends(node, [env.File(f) for f in _family_sources(spec)])
        env.SideEffect(kernel_dir.File(".tvm-lock"), node)  # one TVM generation at a time
        kernels[spec.function_name] = node[0]

    texts = {
        "model.h": result.model_h,
        "model.c": result.model_c,
        "weights.c": result.weights_c,
        "tk_models.c": aot.registry_c([model.name]),
    }
    generated = {}
    for name, text in texts.items():
        digest = hashlib.sha256(text.encode()).hexdigest()
        generated[name] = env.Command(gen_dir.File(name), env.Value(digest),
                                      Action(_text_action(text), f"AOT {name}"))[0]

    sources = list(kernels.values()) + [generated[n] for n in ("model.c", "weights.c", "tk_models.c")]
    sources += [env.File("#" + s) for s in RUNTIME_SOURCES]
    firmware = env.KilnFirmware(model.name, sources=sources, app=app,
                                cpppath=[gen_dir] + RUNTIME_INCLUDES)
    # Objects that include model.h must wait for it (SCons' scanner finds it once it exists).
    env.Depends(firmware, generated["model.h"])

    elf, report_json = firmware[0], firmware[2]
    env.AddPostAction(elf, Action(_model_report_action(model, lowered, plan, result, sorted(kernels),
                                                       report_json.abspath), None))

    opts = env["KILN_OPTIONS"]
    if opts.get("validate"):
        _validate_alias(env, model, elf, report_json)
    return firmware


def _validate_alias(env, model, elf, report_json):
    target = env["KILN_TARGET"]
    opts = env["KILN_OPTIONS"]
    try:
        n = int(opts.get("n", 10))
        seed = int(opts.get("seed", 12345))
    except ValueError:
        raise KilnError("n= and seed= take integers, e.g. n=10") from None
    if n < 0:
        raise KilnError("n= must be 0 or more")

    @kiln_action
    def run_validation(target_nodes, source, env):
        from tinykiln.runner import session

        ok, line = session.validate_firmware(target.board, str(source[0]), model, n=n, seed=seed,
                                             report_path=report_json.abspath,
                                             timeout=float(opts.get("timeout", 60)))
        print(line)
        sys.stdout.flush()
        if not ok:
            raise SCons.Errors.UserError("validation failed: " + line)
        return 0

    alias = env.Alias("validate", [elf, report_json],
                      Action(run_validation, f"VALIDATE {model.name} on {target.board.name}"))
    env.AlwaysBuild(alias)
    env.Default(alias)


def generate(env):
    env.AddMethod(_kiln_model, "KilnModel")


def exists(env):
    return True
