"""Solutions to notebook 03's exercises (the teacher's copy). Each ``# %% <id>`` section replaces the
notebook cell tagged ``exercise-<id>``; see README.md."""

# %% 03.1
# Ours adds x after the branch's ReLU, so x's negative values pass through; He et al.'s ReLU comes last.
predicted_negative = "ours"

# %% 03.2
class ProjectionBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.branch = nn.Sequential(ConvBlock(in_ch, out_ch), ConvBlock(out_ch, out_ch))
        self.skip = nn.Conv2d(in_ch, out_ch, kernel_size=1, bias=False)  # a per-pixel linear map in_ch -> out_ch

    def forward(self, x):
        return self.branch(x) + self.skip(x)

# %% 03.3
# two 2x2 pools up to conv3 (in conv2 and conv3): 96 -> 48 -> 24; conv3 outputs 4 x 64 channels
conv3_shape = (8, 256, 24, 24)

# %% 03.4
# two ConvBlock(256, 256): 3x3x256x256 conv weights (no bias) + BatchNorm's gamma and beta; the skip is free
residual_params = 2 * (3 * 3 * 256 * 256 + 2 * 256)  # 1,180,672

# %% 03.5
# all logits 0 -> softmax gives 1/3 to every class -> loss = -ln(1/3) = ln 3
predicted_first_loss = 1.0986

# %% 03.6
# with BatchNorm after every conv the 56-layer plain stack *amplifies* the gradient on its way back
# (Yang et al. 2019), by orders of magnitude (class and laptop: x2,700 or more). Under smoke (8 layers): "a".
predicted_gradient = "b"

# %% 03.7
# the degradation problem: the 20-layer plain net fits the training images better than the 56-layer one
# (under class and laptop the 56-layer net does not get below "predict the class frequencies" at all)
predicted_lower_loss = 20

# %% 03.8
why_not_overfitting = """
Overfitting would show as a low training loss and a high validation loss; here the deep net's *training*
loss is the higher one, so it fits the very images it trains on worse. It is not a lack of capacity
either: the 56-layer net could copy the 20-layer one and make its 36 extra layers the identity. Plain
layers find the identity hard to learn and gradient descent does not reach that solution; a residual block
only has to drive its branch to zero, and the skip gives every layer a direct path for the gradient.
"""
