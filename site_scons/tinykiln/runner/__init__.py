"""Host side of talking to running firmware: the tinykiln protocol and what is built on it.

Modules:
    transports  byte transports by URL (pipe:, serial ports, socket://)
    protocol    the frames of the tinykiln device protocol
    airunner    AiRunner: drive a model on a device over the protocol
    reference   LiteRT's reference outputs for the same inputs
    validate    compare a device's outputs with the reference
    profile     per-layer profile tables and chart
    model_run   run=1 / validate=1 / profile=1 of a model firmware (on a tinykiln.device Device)
    layers      the per-layer debugger (every intermediate tensor against LiteRT)
"""
