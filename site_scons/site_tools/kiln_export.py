"""SCons tool `kiln_export`: export=1, the model as a folder for an existing firmware build.

    env.Tool("kiln_export")
    nodes = env.KilnExport(model_sources)    # a kiln_model.ModelSources; returns the export's nodes

The folder and what is in it: tinykiln/export.py. Every file is its own target fed by the pipeline's
nodes (kernels/<fn>.c, gen/model.c ...), so the export follows the model incrementally; the library
is compiled from the exported sources themselves (with only export/include on the include path, so
it proves the folder is self-contained) with the board's compiler and flags. The `export` alias
builds it all, the zip last.
"""
from pathlib import Path

from SCons.Script import Action

from kiln import kiln_action  # noqa: E402  (sibling tool, loaded first)

from tinykiln import export, paths


def _copy(transform=None):
    @kiln_action
    def copy(target, source, env):
        if transform is None:
            export.copy_file(source[0].abspath, target[0].abspath)
        else:
            text = Path(source[0].abspath).read_text()
            Path(target[0].abspath).write_text(transform(text))
        return 0

    return copy


def _write(text):
    @kiln_action
    def write(target, source, env):
        Path(target[0].abspath).write_text(text)
        return 0

    return write


def _zip(folder):
    @kiln_action
    def zip_folder(target, source, env):
        export.write_zip(folder, [s.abspath for s in source], target[0].abspath)
        return 0

    return zip_folder


def _kiln_export(env, ms):
    outdir = ms.outdir
    folder = env.Dir(str(paths.export_dir(Path(outdir.abspath))))
    mk_headers, mk_sources = export.micro_kernel_files(env["KILN_ROOT"])
    info = export.export_info(model=ms.model, graph=ms.graph, plan=ms.plan, result=ms.result,
                              target=env["KILN_TARGET"], kernel_files=[f"{fn}.c" for fn in ms.kernels],
                              layers=len(ms.lowered.calls), tools=export.tool_versions(env["CC"]),
                              extra_sources=[Path(s).name for s in mk_sources],
                              extra_headers=[Path(h).name for h in mk_headers])
    c = info.c_name

    def copy(dst, src, transform=None, what="CP"):
        return env.Command(folder.File(dst), src,
                           Action(_copy(transform), f"{what} {dst}"))[0]

    # model_c's transform is a plain function of the text: its code is its SCons signature.
    sources = [copy(f"src/{c}.c", ms.generated["model.c"],
                    lambda text, c=c: export.model_c(text, c), "EXPORT"),
               copy(f"src/{c}_weights.c", ms.generated["weights.c"])]
    sources += [copy(f"src/{fn}.c", node) for fn, node in sorted(ms.kernels.items())]
    sources += [copy(f"src/{Path(s).name}", env.File("#" + s))
                for s in export.RUNTIME_SOURCES + mk_sources]
    headers = [copy(f"include/{c}.h", ms.generated["model.h"])]
    headers += [copy(f"include/{Path(h).name}", env.File("#" + h)) for h in export.RUNTIME_HEADERS]
    headers += [copy(f"include/{Path(h).name}", env.File("#" + h)) for h in mk_headers]

    texts = {
        "model.json": export.model_json(info),
        f"{c}.ld": export.linker_fragment(info),
        f"{c}.mk": export.make_snippet(info),
        f"{c}.cmake": export.cmake_snippet(info),
        "README.md": export.readme(info),
    }
    files = [env.Command(folder.File(name), env.Value(text), Action(_write(text), f"EXPORT {name}"))[0]
             for name, text in texts.items()]

    # The library: the exported sources, the board's flags, nothing but export/include.
    lenv = env.Clone()
    lenv.Replace(CPPPATH=[folder.Dir("include")], CPPDEFINES=[])
    if not env["KILN_OPTIONS"].get("verbose"):
        lenv["RANLIBCOMSTR"] = "RANLIB $TARGET"
    objdir = outdir.Dir("export-obj")
    objs = [lenv.Object(objdir.File(Path(str(s)).stem + lenv["OBJSUFFIX"]), s)[0] for s in sources]
    env.Depends(objs, headers)
    lib = lenv.StaticLibrary(folder.File(info.library), objs)[0]

    everything = sources + headers + files + [lib]
    zipped = env.Command(outdir.File(export.zip_name(info)), everything,
                         Action(_zip(folder.abspath), "ZIP $TARGET"))
    alias = env.Alias("export", everything + zipped)
    return alias


def generate(env):
    env.AddMethod(_kiln_export, "KilnExport")


def exists(env):
    return True
