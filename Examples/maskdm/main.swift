print("maskdm")
