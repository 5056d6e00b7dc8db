"""SCons tool `kiln_firmware`: the board's toolchain and the firmware builders.

Loaded by the `kiln` tool (which resolves board + variant first). The hook other build steps use
(the model pipeline adds its generated C this way):

    fw = env.KilnFirmware(name, sources=[...], app="selftest", cpppath=[...], cppdefines=[...])

    name        target name: outputs go to build/<board>/<variant>/<name>/ (ELF, map, report.json)
    sources     extra C/assembly files or Nodes (e.g. a builder's generated .c), or ready objects
    app         runtime/apps/<app>/: the firmware's app_main (selftest, later validation/perf).
                Its *.c/*.S are compiled; an optional app.toml adds shared runtime parts:
                    sources = ["../../protocol/tk_proto.c"]   # relative to the app directory
                    include = ["../../protocol", "../../ai"]
    cpppath     extra include directories for the app and the extra sources
    cppdefines  extra macros for the app and the extra sources
    returns     NodeList [elf, map, report.json]; pass it to env.KilnDeploy for run=1 / flash=1

    objs = env.KilnCompile(sources, objdir, cpppath=[...], cppdefines=[...])
        compiles with the board's flags into objdir (a Dir or a path under the build dir); used by
        KilnFirmware and usable for libraries (export).

The board's own sources and runtime/src/*.c are compiled once per board+variant (in _kiln/) and
shared by every firmware. Each object depends on its exact command line (SCons signatures), so a
changed flag, define, board or variant file rebuilds exactly what it affects.
"""
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from SCons.Script import Action

from tinykiln import KilnError, boards, paths, prerequisites, sizes

# Imported lazily by SCons as a sibling tool module; kiln.py defines kiln_action.
from kiln import kiln_action  # noqa: E402

WARNINGS = ["-Wall", "-Wextra"]


def _common_dir(env):
    """build/<board>/<variant>/_kiln: what every firmware of the target shares (tinykiln.paths)."""
    return env.Dir(str(paths.common_dir(Path(env["KILN_BUILD_DIR"].abspath))))


def _setup_toolchain(env):
    t = env["KILN_TARGET"]
    opts = env["KILN_OPTIONS"]
    root = env["KILN_ROOT"]
    for tool in ("gcc", "as", "ar"):
        env.Tool(tool)
    env["CC"] = prerequisites.compiler(t.board)  # the one place that names the board's compiler
    if t.board.is_host:
        env["AR"] = "ar"
    else:
        env["AR"] = "arm-none-eabi-ar"
        env["RANLIB"] = "arm-none-eabi-ranlib"
    env["AS"] = env["CC"]
    env["LINK"] = env["CC"]
    env["ENV"]["PATH"] = os.environ.get("PATH", "")
    env["CCFLAGS"] = t.cflags + WARNINGS + ["-ffunction-sections", "-fdata-sections"]
    if opts["werror"]:
        env.Append(CCFLAGS=["-Werror"])
    env["CFLAGS"] = ["-std=gnu11"]
    env["ASPPFLAGS"] = t.board.cpu_flags + ["-x", "assembler-with-cpp"]
    extra = [d for d in opts["defines"].split(",") if d.strip()]
    env["CPPDEFINES"] = t.defines + extra  # the board's facts as macros: tinykiln.boards
    env["CPPPATH"] = [env.Dir("#runtime/include"), env.Dir("#runtime/kernels"), env.Dir("#boards/common"),
                      env.Dir(t.board.dir.as_posix())]
    if t.board.is_host:
        env["KILN_LINKFLAGS"] = t.cflags + t.variant.ldflags
        env["KILN_LINKCOM"] = "$LINK -o $TARGET $KILN_LINKFLAGS -Wl,-Map=${TARGETS[1]} $SOURCES -lm"
    else:
        gen = _common_dir(env)
        env["KILN_LINKFLAGS"] = t.cflags + t.variant.ldflags + [
            "-nostartfiles", "--specs=nano.specs", "-Wl,--gc-sections",
            "-L" + str(root / "boards" / "common"), "-L" + gen.abspath,
            "-T", t.board.linker_script.as_posix()]
        env["KILN_LINKCOM"] = ("$LINK -o $TARGET $KILN_LINKFLAGS -Wl,-Map=${TARGETS[1]} $SOURCES "
                               "-Wl,--start-group -lc -lm -lgcc -Wl,--end-group")
    if not opts["verbose"]:
        env["CCCOMSTR"] = "CC  $SOURCE"
        env["ASPPCOMSTR"] = "AS  $SOURCE"
        env["ASCOMSTR"] = "AS  $SOURCE"
        env["ARCOMSTR"] = "AR  $TARGET"
        env["RANLIBCOMSTR"] = ""


@kiln_action
def _write_value(target, source, env):
    Path(target[0].abspath).write_text(source[0].read())
    return 0


@kiln_action
def _link(target, source, env):
    t = env["KILN_TARGET"]
    argv = [str(a) for a in env.subst_list("$KILN_LINKCOM", target=target, source=source)[0]]
    if env["KILN_OPTIONS"]["verbose"]:
        print(" ".join(argv))
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        overflows = sizes.parse_overflows(proc.stderr)
        if overflows and not t.board.is_host:
            # Link again keeping the image, to say what fills the region.
            probe = target[0].abspath + ".overflow"
            relink = list(argv)
            relink[relink.index("-o") + 1] = probe
            subprocess.run(relink + ["-Wl,--noinhibit-exec"], capture_output=True, text=True)
            try:
                opts = env["KILN_OPTIONS"]
                error = sizes.overflow_error(t, overflows, probe, opts.optimize,
                                             int(env.get("KILN_INT16_EXTRA", 0)))
            finally:
                if os.path.exists(probe):
                    os.remove(probe)
            raise error
        sys.stderr.write(proc.stderr)
        return proc.returncode
    if proc.stderr:
        sys.stderr.write(proc.stderr)
    name = Path(target[0].abspath).stem
    data, text = sizes.build_report(t, target[0].abspath, name)
    sizes.write_report(target[2].abspath, data)
    print(text)
    return 0


def _object_name(env, node, objdir):
    """objdir/<path of the source relative to the project or the build dir>.o"""
    path = node.abspath
    build = env["KILN_BUILD_DIR"].abspath
    base = os.path.relpath(path, build) if path.startswith(build + os.sep) else \
        os.path.relpath(path, str(env["KILN_ROOT"]))
    base = base.replace(".." + os.sep, "__" + os.sep)
    return objdir.File(os.path.splitext(base)[0] + env["OBJSUFFIX"])


def _compile(env, sources, objdir, cpppath=(), cppdefines=()):
    if isinstance(objdir, str):
        objdir = env["KILN_BUILD_DIR"].Dir(objdir)
    cenv = env
    if cpppath or cppdefines:
        cenv = env.Clone()
        cenv.Append(CPPPATH=[env.Dir(p) if isinstance(p, str) else p for p in cpppath],
                    CPPDEFINES=list(cppdefines))
    objs = []
    for src in env.Flatten(sources):
        node = env.File(src) if isinstance(src, (str, Path)) else src
        if str(node).endswith((env["OBJSUFFIX"], ".a")):
            objs.append(node)
            continue
        objs += cenv.Object(target=_object_name(env, node, objdir), source=node)
    return objs


def _generated(env, name, text):
    gen = _common_dir(env)
    return env.Command(gen.File(name), env.Value(text), Action(_write_value, "GEN $TARGET"))[0]


def _common_objects(env):
    """Board sources, board_info.c and runtime/src: once per board + variant."""
    if "_KILN_COMMON" not in env:
        t = env["KILN_TARGET"]
        root = env["KILN_ROOT"]
        info = _generated(env, "board_info.c", boards.board_info_c(t))
        runtime = sorted((root / "runtime" / "src").glob("*.c"))
        srcs = [env.File(p.as_posix()) for p in t.board.sources + runtime] + [info]
        env["_KILN_COMMON"] = _compile(env, srcs, _common_dir(env))
        if not t.board.is_host:
            env["_KILN_LINK_DEPS"] = [_generated(env, "memory.ld", boards.memory_script(t)),
                                      env.File(t.board.linker_script.as_posix())] + \
                [env.File(p.as_posix()) for p in (root / "boards" / "common").glob("*/*.ld")]
        else:
            env["_KILN_LINK_DEPS"] = []
    return env["_KILN_COMMON"]


def app_names(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "runtime" / "apps").iterdir() if p.is_dir())


def _app_parts(app_dir: Path):
    """(sources, include dirs) an app's optional app.toml adds, checked to exist."""
    path = app_dir / "app.toml"
    if not path.is_file():
        return [], []
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise KilnError(f"{path}: invalid TOML: {e}") from None
    srcs = [(app_dir / s).resolve() for s in data.get("sources", [])]
    incs = [(app_dir / s).resolve() for s in data.get("include", [])]
    for p in srcs + incs:
        if not p.exists():
            raise KilnError(f"{path}: {p} does not exist")
    return srcs, incs


def _firmware(env, name, sources=(), app="selftest", cpppath=(), cppdefines=()):
    root = env["KILN_ROOT"]
    app_dir = root / "runtime" / "apps" / app
    if not app_dir.is_dir():
        raise boards.unknown_name_error("app", app, app_names(root))
    outdir = env["KILN_BUILD_DIR"].Dir(name)
    app_srcs = [env.File(p.as_posix()) for p in sorted(app_dir.glob("*.c")) + sorted(app_dir.glob("*.S"))]
    extra_srcs, extra_inc = _app_parts(app_dir)
    app_srcs += [env.File(p.as_posix()) for p in extra_srcs]
    cpppath = [env.Dir(p.as_posix()) for p in extra_inc] + list(cpppath)
    objs = _common_objects(env) + _compile(env, app_srcs + list(env.Flatten(sources)),
                                           outdir.Dir("obj"), cpppath, cppdefines)
    elf = outdir.File(name + ".elf")
    nodes = env.Command([elf, outdir.File(name + ".map"), outdir.File("report.json")], objs,
                        Action(_link, "LD  $TARGET", varlist=["KILN_LINKCOM", "KILN_LINKFLAGS", "LINK"]))
    env.Depends(nodes, env["_KILN_LINK_DEPS"])
    return nodes


def generate(env):
    _setup_toolchain(env)
    env.AddMethod(_compile, "KilnCompile")
    env.AddMethod(_firmware, "KilnFirmware")


def exists(env):
    return True
