"""Plain ``nn.Module`` networks. They know nothing of Lightning, so the manual loop reuses them."""
