"""Host side of running firmware: launching emulators (qemu.py) and, later, the device protocol.

Modules:
    qemu   start QEMU for a board + ELF, console on the terminal or a TCP port; exit status back
"""
