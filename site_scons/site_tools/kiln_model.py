"""SCons tool `kiln_model`: model= -> generated C -> firmware, and validate=1.

    env.Tool("kiln_model")
    fw = env.KilnModel("cifar10")          # or a path to a .tflite; returns KilnFirmware's nodes

What it builds, under build/<board>/<variant>/<model>/ (each file its own target):

    kernels/<tk_family_hash>.c   one per distinct kernel spec (TVM codegen). Depends on the spec's
                                 canonical text alone (op, shapes, quantization, knobs, and the
                                 digest of the sources that generate its family: tinykiln.sources),
                                 so a changed layer or generator regenerates those kernels only;
                                 identical layers share one file.
    gen/model.c, model.h, weights.c, tk_models.c
                                 the AOT model (tinykiln.aot) with the static arena plan; depend on
                                 the digest of their own text.
    <model>.elf, report.json     linked by KilnFirmware with the app (default validation, whose
                                 app.toml adds runtime/protocol) and runtime/ai; report.json gains
                                 "model" and "memory" blocks.

The model is imported, lowered and planned while SConstruct is read (that is how SCons learns the
kernel files); the generation itself runs as build actions. That result is kept in
<model>/.pipeline.pickle (tinykiln.pipeline.compile with cache=): a rebuild with nothing changed
reads it back and imports no TVM.
Kernel generation runs one at a time (TVM is not used from several threads at once).

run=1 or validate=1 [n=10] [seed=] [profile=1] with the validation app (the default): after the
build, run the firmware (board=host: a process on a pipe; an emulated board: QEMU with -icount
shift=0 and TCP serial; hardware: flash=1 first, then port=), show a sample's top classes, feed n
seeded random inputs plus the model's samples, compare every output with LiteRT's reference
kernels, print the verdict, the count per inference, arena and flash (runner/model_run.py), merge
"validation" and the count into report.json. profile=1 adds the per-layer table, report.json
"profile" and profile.png. A failed validation fails the build, and so does one that compared
nothing (LiteRT cannot run the model, nor a corrected copy: runner/reference.py): the firmware is
built and ran the inputs, report.json says "compared": false, but the build is not green.

app=perf (or any other app): the firmware is built as <model>-<app> (its own directory, so
switching apps rebuilds nothing) and run=1 / flash=1 run it like any firmware (kiln.py KilnDeploy).
"""
import dataclasses
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import SCons.Errors
from SCons.Script import Action

from kiln import kiln_action  # noqa: E402  (sibling tool, loaded first)

from tinykiln import KilnError, models, paths, pipeline, report

# What every firmware with a model needs; an app adds its own parts (validation: the protocol) in
# its app.toml.
RUNTIME_SOURCES = ["runtime/ai/ai_runtime.c"]
RUNTIME_INCLUDES = ["#runtime/ai"]


def _kernel_action(spec):
    """Generates one kernel's C. It closes over the spec alone: SCons signs a Python action by its
    code and closure (pickled), and a kernel must not rebuild when another part of the model moves."""
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
        state = f", state {block['state_bytes']} B" if block.get("state_bytes") else ""
        print(f"model {info['name']}: arena {block['arena_bytes']} B (lower bound "
              f"{block['arena_lower_bound']} B){state}, weights {block['weights_bytes']} B, code "
              f"{block['code_bytes']} B in {len(kernels)} kernels")
        return 0

    return add_model_report


@dataclass
class ModelSources:
    """The nodes model_sources made for one model, and the pipeline's result behind them."""
    compiled: pipeline.Compiled
    kernels: dict  # kernel function name -> Node of kernels/<name>.c
    generated: dict  # "model.h", "model.c", "weights.c", "tk_models.c" -> Node
    gen_dir: object  # Dir holding model.h (an include path of every user of the model)
    outdir: object  # Dir of the model's outputs (paths.firmware_dir)

    model = property(lambda self: self.compiled.model)
    graph = property(lambda self: self.compiled.graph)
    lowered = property(lambda self: self.compiled.lowered)
    plan = property(lambda self: self.compiled.plan)
    result = property(lambda self: self.compiled.aot)

    @property
    def c_sources(self) -> list:
        """What a firmware compiles for the model (the runtime and tk_models.c are extra)."""
        return list(self.kernels.values()) + [self.generated["model.c"], self.generated["weights.c"]]


def _weights_region(target) -> int | None:
    """Bytes of the region the board places the weights in (the host has no limit)."""
    if target.board.is_host or "weights" not in target.placement:
        return None
    return target.region_of_role("weights").size


def model_sources(env, spec, outdir=None) -> ModelSources:
    """The model's generated C as SCons nodes: kernels/<fn>.c (one per distinct kernel) and gen/
    under outdir (default build/<board>/<variant>/<model>/). `spec`: model= text or a models.Model.
    Shared by KilnModel, export=1 and the kiln_embed tool for other SConstructs."""
    root = env["KILN_ROOT"]
    target = env["KILN_TARGET"]
    opts = env["KILN_OPTIONS"]
    model = spec if isinstance(spec, models.Model) else models.resolve(root, spec)
    outdir = outdir or env["KILN_BUILD_DIR"].Dir(model.name)
    compiled = pipeline.compile(model, target.board.name, schedules_file=opts.get("schedules", ""),
                                use_tuned=bool(opts.get("use_tuned", True)),
                                cache=paths.pipeline_cache(Path(outdir.abspath)),
                                optimize=opts.optimize,
                                weights_region=_weights_region(target))
    # what optimize='s int16 weight layouts add (the overflow message says if optimize=size would fit)
    env["KILN_INT16_EXTRA"] = env.get("KILN_INT16_EXTRA", 0) + compiled.int16_extra
    for line in compiled.warnings:  # kept with the cached result: every build shows them
        print(f"warning: {compiled.schedule_path}: {line}", file=sys.stderr)

    kernel_dir = env.Dir(str(paths.kernels_dir(Path(outdir.abspath))))
    gen_dir = env.Dir(str(paths.gen_dir(Path(outdir.abspath))))

    kernels = {}
    for name, kspec in compiled.kernels.items():
        node = env.Command(kernel_dir.File(f"{name}.c"), env.Value(kspec.canonical()),
                           Action(_kernel_action(kspec), f"TVM {name}.c"))
        env.SideEffect(kernel_dir.File(".tvm-lock"), node)  # one TVM generation at a time
        kernels[name] = node[0]

    generated = {}
    for name, text in compiled.texts.items():
        digest = hashlib.sha256(text.encode()).hexdigest()
        generated[name] = env.Command(gen_dir.File(name), env.Value(digest),
                                      Action(_text_action(text), f"AOT {name}"))[0]
    return ModelSources(compiled, kernels, generated, gen_dir, outdir)


def _kiln_model(env, spec_text, app="validation"):
    ms = model_sources(env, spec_text)
    model, lowered, plan, result = ms.model, ms.lowered, ms.plan, ms.result
    kernels, generated, gen_dir = ms.kernels, ms.generated, ms.gen_dir
    if env["KILN_OPTIONS"].get("export"):
        env.Tool("kiln_export")  # export=1: the model as a library folder (kiln_export.py)
        env.KilnExport(ms)

    sources = ms.c_sources + [generated["tk_models.c"]]
    sources += [env.File("#" + s) for s in RUNTIME_SOURCES]
    name = model.name if app == "validation" else f"{model.name}-{app}"
    firmware = env.KilnFirmware(name, sources=sources, app=app,
                                cpppath=[gen_dir] + RUNTIME_INCLUDES)
    # Objects that include model.h must wait for it (SCons' scanner finds it once it exists).
    env.Depends(firmware, generated["model.h"])

    elf, report_json = firmware[0], firmware[2]
    env.AddPostAction(elf, Action(_model_report_action(model, lowered, plan, result, sorted(kernels),
                                                       report_json.abspath), None))

    opts = env["KILN_OPTIONS"]
    if app != "validation":
        if opts.get("validate") or opts.get("profile"):
            raise KilnError(f"validate=1 and profile=1 talk to the validation app; app={app} cannot "
                            f"answer them: drop app= (or the option)")
        env.KilnDeploy(firmware)
    elif opts.get("validate") or opts.get("run") or opts.get("profile"):
        _validate_alias(env, ms, elf, report_json)
    elif opts.get("flash"):
        env.KilnDeploy(firmware)  # flash only; validate=1 port= would check it too
    return firmware


def _validate_alias(env, ms, elf, report_json):
    """The always-run `validate` alias: runner.model_run on the device tinykiln.device picks (a
    hardware board is flashed first with flash=1)."""
    from tinykiln import device

    target = env["KILN_TARGET"]
    board = target.board
    opts = env["KILN_OPTIONS"]
    model, n, seed, profile = ms.model, opts.n, opts.seed, opts.profile
    options = device.DeviceOptions.from_opts(opts)
    method = device.kind(board, options, device.SESSION)  # a wrong combination stops here
    plugin = env.KilnCyclesPlugin() if method == device.QEMU else None  # the cycle estimate
    if plugin is not None:
        options = dataclasses.replace(options, cycles_plugin=plugin.abspath)
    if opts.samples:
        model = models.with_samples(model, [f for f in opts.samples.split(",") if f], max_runs=max(n, 4))
    # The run reads the graph the build compiled (layer names for the profile) back from the
    # pipeline cache: closing over it would make SCons pickle the whole graph to sign the action.
    cache = str(paths.pipeline_cache(Path(ms.outdir.abspath)))

    @kiln_action
    def run_on_device(target_nodes, source, env):
        from tinykiln.runner import model_run, validate

        compiled = pipeline.load_cached(cache)
        result = model_run.run_model(board, str(source[0]), model, options, n=n, seed=seed,
                                     profile=profile, report_path=report_json.abspath,
                                     graph=compiled.graph if compiled else None)
        sys.stdout.flush()
        if not result.passed:  # a mismatch, or nothing compared: never a green build
            raise SCons.Errors.UserError(validate.failure(result, model.name, board.name))
        return 0

    where = {"qemu": "QEMU", "host": "host"}.get(method, options.port)
    alias = env.Alias("validate", [elf, report_json] + ([plugin] if plugin is not None else []),
                      Action(run_on_device, f"RUN {model.name} on {board.name} ({where})"))
    env.AlwaysBuild(alias)
    env.Default(alias)


def generate(env):
    env.AddMethod(_kiln_model, "KilnModel")


def exists(env):
    return True
