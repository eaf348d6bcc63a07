from alexlab.model.alexnet import AlexNet

__all__ = ["AlexNet"]
