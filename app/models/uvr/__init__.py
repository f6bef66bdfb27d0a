"""UVR's VR-architecture networks (the ``.pth`` files of upstream's ``tools/uvr5/uvr5_weights/``)."""
