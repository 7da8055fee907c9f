"""facecast.pipelines.export."""
