// ViTDiffusion module
