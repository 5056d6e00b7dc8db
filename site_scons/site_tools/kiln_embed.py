"""SCons tool `kiln_embed`: tinykiln models inside a firmware that has its own SConstruct.

    env = Environment()                                   # your firmware's environment
    env.Tool("kiln_embed", toolpath=["<tinykiln checkout>/site_scons/site_tools"])
    net = env.TinyKilnModel("net", "path/model.tflite", board="nucleo-f746zg")  # variant="release"
    env.Append(CPPPATH=net.cpppath)                       # net.h (net_run, NET_ARENA_SIZE), ai_runtime.h
    env.Program("fw.elf", my_objects + net.objects, LIBS=["m"])

TinyKilnModel(name, model, board=, variant="release", builddir="#build/tinykiln", werror=False)
    name      the C prefix of the model's API: <name>_run, <NAME>_ARENA_SIZE, <name>_info, "<name>.h"
    model     a .tflite path (relative to the calling SConscript) or a model of the checkout's models/
    returns   a TinyKilnModel result: .objects (Object nodes: the model's kernels, model and weights,
              the ai_* runtime), .cpppath (include Dirs), .header (the <name>.h node), .info (the
              pipeline's objects: model, graph, plan, ...). Iterating it gives (objects, cpppath).

It runs tinykiln's own pipeline (site_tools/kiln_model.model_sources): one kernels/<fn>.c per distinct
kernel, regenerated only when its spec or its op family changes, and the board's compiler and flags
(boards/<board>/board.toml + variants/<variant>.toml) for every object, in <builddir>/<board>/<variant>/.
Your own environment is left as it is (the model is built in a clone).

Several models in one firmware: kernels shared by two models and the runtime are the same nodes in
both results; link `env.TinyKilnObjects(net_a, net_b)` (every object once) rather than the sum.
"""
import os
import sys
from dataclasses import dataclass, replace

_TOOLS = os.path.dirname(os.path.abspath(__file__))
_SITE = os.path.dirname(_TOOLS)
_ROOT = os.path.dirname(_SITE)
# A foreign SConstruct has only site_tools/ on its path (SCons adds the toolpath): the package is
# one folder up.
if _SITE not in sys.path:
    sys.path.append(_SITE)

import SCons.Errors  # noqa: E402
from SCons.Script import Action  # noqa: E402

from tinykiln import KilnError, boards, models  # noqa: E402

# Objects shared between models of one build directory: kernel function name -> Object node, and
# the runtime. Keyed by the build directory (board + variant inside it).
_SHARED: dict[str, dict] = {}


@dataclass
class TinyKilnModel:
    name: str
    objects: list
    cpppath: list
    header: object
    info: object  # site_tools/kiln_model.ModelSources

    def __iter__(self):
        return iter((self.objects, self.cpppath))


def _options(werror: bool):
    # The kiln tools read the command line's options in tinykiln's own SConstruct; here, the defaults.
    from tinykiln.options import Options

    return Options({"werror": werror})


def _model_env(env, board, variant, builddir, werror):
    """A clone of the caller's environment set up like tinykiln's own build for board + variant."""
    from pathlib import Path

    root = Path(_ROOT)
    menv = env.Clone()
    menv["KILN_ROOT"] = root
    menv["KILN_TARGET"] = boards.resolve(root, board, variant)
    menv["KILN_OPTIONS"] = _options(werror)
    menv["KILN_BUILD_DIR"] = menv.Dir(builddir).Dir(board).Dir(variant)
    menv.Tool("kiln_firmware", toolpath=[_TOOLS])  # the board's compiler, flags, KilnCompile
    menv.Tool("kiln_model", toolpath=[_TOOLS])  # the model pipeline (model_sources)
    return menv


def _resolve_model(env, name, spec):
    root = _ROOT
    looks_like_path = str(spec).endswith(".tflite") or os.sep in str(spec)
    model = models.resolve(root, env.File(spec).abspath if looks_like_path else str(spec))
    return replace(model, name=name)


def _tinykiln_model(env, name, model, board=None, variant=boards.DEFAULT_VARIANT,
                    builddir="#build/tinykiln", werror=False):
    try:
        return _build(env, name, model, board, variant, builddir, werror)
    except KilnError as e:
        raise SCons.Errors.UserError(f"TinyKilnModel({name!r}): {e}") from None


def _build(env, name, spec, board, variant, builddir, werror):
    from tinykiln import aot, export

    if not board:
        raise KilnError(f"give board=, one of: {', '.join(boards.board_names(_ROOT))}")
    if aot.c_identifier(name) != name:
        raise KilnError(f"the name is the C prefix of the model's API: use a C identifier such as "
                        f"{aot.c_identifier(name)!r}")
    menv = _model_env(env, board, variant, builddir, werror)
    import kiln_model  # loaded by _model_env, with its sibling `kiln`
    from kiln import kiln_action

    model = _resolve_model(env, name, spec)
    outdir = menv["KILN_BUILD_DIR"].Dir(name)
    ms = kiln_model.model_sources(menv, model, outdir=outdir)
    shared = _SHARED.setdefault(menv["KILN_BUILD_DIR"].abspath, {"kernels": {}, "runtime": None})
    # TVM generation one at a time across every model of this build (each model has its own lock).
    menv.SideEffect(menv["KILN_BUILD_DIR"].File(".tvm-lock"), list(ms.kernels.values()))

    include = outdir.Dir("include")

    @kiln_action
    def copy_header(target, source, env):
        export.copy_file(source[0].abspath, target[0].abspath)
        return 0

    header = menv.Command(include.File(f"{name}.h"), ms.generated["model.h"],
                          Action(copy_header, f"GEN {name}.h"))[0]
    runtime_inc = [menv.Dir(os.path.join(_ROOT, "runtime", d)) for d in ("ai", "include", "kernels")]
    cpppath = [ms.gen_dir] + runtime_inc

    objects = menv.KilnCompile([ms.generated["model.c"], ms.generated["weights.c"]],
                               outdir.Dir("obj"), cpppath=cpppath)
    texts = shared.setdefault("specs", {})
    specs = {call.spec.function_name: call.spec.canonical() for call in ms.lowered.calls}
    for fn, node in sorted(ms.kernels.items()):
        if fn not in shared["kernels"]:
            shared["kernels"][fn] = menv.KilnCompile([node], outdir.Dir("obj"), cpppath=cpppath)[0]
            texts[fn] = specs[fn]
        elif texts[fn] != specs[fn]:
            # kernels are named by workload (tinykiln/kernel.py): same layer, other knobs
            raise KilnError(f"model {name} and an earlier model share kernel {fn} with different "
                            f"schedule knobs: give that kernel the same knobs in both models' schedule "
                            f"files")
        objects.append(shared["kernels"][fn])
    if shared["runtime"] is None:
        _, mk_sources = export.micro_kernel_files(_ROOT)
        sources = [menv.File(os.path.join(_ROOT, s)) for s in export.RUNTIME_SOURCES + mk_sources]
        shared["runtime"] = menv.KilnCompile(sources, menv["KILN_BUILD_DIR"].Dir("_tinykiln"),
                                             cpppath=runtime_inc)
    objects += shared["runtime"]
    menv.Depends(objects, header)
    return TinyKilnModel(name=name, objects=objects, cpppath=[include] + runtime_inc, header=header,
                         info=ms)


def _tinykiln_objects(env, *results):
    """The objects of several TinyKilnModel results, each object once (shared kernels, runtime)."""
    seen, objects = set(), []
    for result in results:
        for node in result.objects:
            if id(node) not in seen:
                seen.add(id(node))
                objects.append(node)
    return objects


def generate(env):
    env.AddMethod(_tinykiln_model, "TinyKilnModel")
    env.AddMethod(_tinykiln_objects, "TinyKilnObjects")


def exists(env):
    return True
