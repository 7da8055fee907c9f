"""Where live frames go: one sender per protocol, each ``send(frame)`` / ``close()``
(:class:`~facecast.pipelines.live.frame.Sender`)."""
