"""The only package that knows upstream file formats: GPT-SoVITS .ckpt/.pth and so-vits-svc G_*.pth."""
