"""Plain ``nn.Module`` networks. They know nothing of Lightning, so the manual loop reuses them.

cnn.py: SmallCNN from scratch. transfer.py: any torchvision classifier as a pretrained backbone
with a new head (backbones.py finds each family's head). resnet.py: the ResNet18 default.
pruned.py: the layer widths a pruned network records (python -m project prune), and the rebuild.
"""
