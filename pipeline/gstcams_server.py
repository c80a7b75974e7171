"""An independent RTSP camera for the tests: GStreamer's ``gst-rtsp-server`` with Digest authentication.

This file is a script for the **system** Python (``/usr/bin/python3``, which has PyGObject from Debian's
``python3-gi`` and ``gir1.2-gst-rtsp-server-1.0``), not for the project's virtual environment; it imports
nothing but the standard library and ``gi``. :class:`pipeline.gstcams.GstCameraServer` starts it as a
subprocess. Everything secret comes from the environment, never from the command line (``ps`` shows that)::

    GSTCAMS_CONFIG='{"port": 0, "users": [["admin", "pa@ss"]], "protocols": "tcp+udp",
                     "mounts": {"/Streaming/Channels/101": {"file": "/cache/clip.h264.mp4", "codec": "h264"}}}'
    /usr/bin/python3 pipeline/gstcams_server.py

The server binds 127.0.0.1 (port 0: a free one), then prints one line ``READY <port>`` on stdout and serves
until SIGTERM/SIGINT. Each viewer gets its own pipeline from the start of the file (``filesrc ! qtdemux !
h26Xparse ! rtph26Xpay``), streamed in real time; a wrong user or password gets ``401 Unauthorized``. Transport
(``protocols``) is ``tcp``, ``udp`` or ``tcp+udp``: a camera that offers only one of them answers the other's
SETUP with ``461 Unsupported transport``, as gst-rtsp-server's ``set_protocols`` does.
"""

from __future__ import annotations

import json
import os
import signal
import sys

ENV_CONFIG = "GSTCAMS_CONFIG"
ROLE = "viewer"
REALM = "IP Camera"


def build_launch(path: str, codec: str) -> str:
    """The gst-launch description of one mount: the file demuxed, parsed and payloaded, no re-encoding."""
    parse, pay = ("h264parse", "rtph264pay") if codec == "h264" else ("h265parse", "rtph265pay")
    location = path.replace("\\", "\\\\").replace('"', '\\"')
    return f'( filesrc location="{location}" ! qtdemux ! {parse} ! {pay} name=pay0 pt=96 config-interval=-1 )'


def main() -> int:
    """Serve the mounts of ``$GSTCAMS_CONFIG`` until terminated; return the exit code."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    config = json.loads(os.environ[ENV_CONFIG])
    Gst.init(None)
    protocols = GstRtsp.RTSPLowerTrans(0)
    for name in str(config.get("protocols", "tcp+udp")).split("+"):
        protocols |= {"tcp": GstRtsp.RTSPLowerTrans.TCP, "udp": GstRtsp.RTSPLowerTrans.UDP}[name]

    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(int(config.get("port", 0))))

    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    auth.set_realm(REALM)
    for user, password in config["users"]:
        token = GstRtspServer.RTSPToken()
        token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ROLE)
        auth.add_digest(user, password, token)
    server.set_auth(auth)

    mounts = server.get_mount_points()
    for mount, media in config["mounts"].items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(build_launch(media["file"], media.get("codec", "h264")))
        factory.set_shared(False)
        factory.set_protocols(protocols)
        factory.add_role_from_structure(Gst.Structure.from_string(
            f"{ROLE}, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
        mounts.add_factory(mount, factory)

    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on 127.0.0.1:{config.get('port', 0)}\n")
        return 1
    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    sys.stdout.write(f"READY {server.get_bound_port()}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
