"""SCons tool `kiln_cycles`: the cycle-estimate QEMU plugin (tools/qemu-cycles, tinykiln.cycles),
built with the host gcc for a board that has a timing model under QEMU.

    so = env.KilnCyclesPlugin()     # the .so Node, or None (no model for the board, or no plugin
                                    # support on this machine: tinykiln.cycles.unavailable says why)

The target depends on the plugin's sources and headers and on its exact command line, so editing
the timing tables rebuilds it, and nothing else.
"""
from pathlib import Path

from SCons.Script import Action

from tinykiln import cycles, paths


def _plugin(env):
    board = env["KILN_TARGET"].board
    if cycles.core_of(board) is None or cycles.unavailable():
        return None
    if "KILN_CYCLES_PLUGIN" not in env:
        so = paths.cycles_plugin(Path(env["KILN_BUILD_DIR"].abspath))
        sources = [env.File(str(p)) for p in cycles.source_paths()]
        command = " ".join(cycles.compile_command("$TARGET", ["$SOURCES"]))
        shown = None if env["KILN_OPTIONS"]["verbose"] else "HOSTCC $TARGET (the cycle-estimate QEMU plugin)"
        node = env.Command(str(so), sources, Action(command, shown))
        env.Depends(node, [env.File(str(p)) for p in cycles.header_paths()])
        env["KILN_CYCLES_PLUGIN"] = node[0]
    return env["KILN_CYCLES_PLUGIN"]


def generate(env):
    env.AddMethod(_plugin, "KilnCyclesPlugin")


def exists(env):
    return True
