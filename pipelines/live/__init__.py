"""Live mode (``facecast live``): frames from a camera, a video played in real time or a network stream,
tracked one by one into ARKit weights and a head pose (:class:`~facecast.pipelines.live.frame.LiveFrame`),
and sent as they come to VTuber apps (VMC over OSC, iFacialMocap), Unreal (Live Link Face) and a
built-in web viewer (WebSocket)."""
