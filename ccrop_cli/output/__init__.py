"""What the programs write and read back: pictures, box-store files (JSON, checkpoints), image
folders, and ``ccrop viz`` that draws them."""
