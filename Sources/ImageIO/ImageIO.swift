// ImageIO module
