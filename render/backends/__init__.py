"""facecast.render.backends."""
