// drover-soak: placeholder until the soak driver lands.
print("drover-soak: not built yet")
