"""facecast.pipelines."""
