"""The built-in multilayer perceptron: its functions and the model."""
