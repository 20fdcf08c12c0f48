"""The rules: submissions and their status machine, validation, who may see what. No I/O."""
