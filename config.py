"""The configuration tree: every key, its default, and what it does.

Precedence, lowest to highest: these defaults < the BASE chain < the YAML file < command-line
flags < `--opts KEY VALUE ...`. `get_config` applies them in that order and returns a frozen
CfgNode. This file is the reference for every key: each is documented once, on its line.
"""
from __future__ import annotations

import ast
import difflib
import math
import os
import warnings
from typing import Any, Sequence

import yaml
from yacs.config import CfgNode as CN

from utils.bounded_yaml import AliasExpansionError, load_yaml
from utils.choices import resolve_choice
from utils.errors import UserError

_C = CN()

# Other YAML files this one inherits from, paths relative to this file; later ones win.
_C.BASE = [""]

# -----------------------------------------------------------------------------
# Data
# -----------------------------------------------------------------------------
_C.DATA = CN()
# Images per batch, for training and for evaluation.
_C.DATA.BATCH_SIZE = 128
# Where the data set lives: a folder for cifar10/cifar100, the .hdf5 file or its folder for
# medium_imagenet, the folder holding train/<class>/ for imagefolder, the folder of the CSV and
# the image folders for csv; not read for digits, which ships with scikit-learn.
_C.DATA.DATA_PATH = "datasets"
# Data set name: digits, cifar10, cifar100, medium_imagenet, imagefolder (class folders of JPEG,
# PNG or WEBP files) or csv (a CSV of ids and labels beside a folder of images).
_C.DATA.DATASET = "digits"
# Side of the square image the model sees, in pixels (images are resized when it differs).
_C.DATA.IMG_SIZE = 32
# Resolution of the MediumImageNet file to pick when DATA_PATH is a folder: 96 or 224. For
# imagefolder, the side images are decoded to when AUG.RRC_SCALE crops from them and it is larger
# than IMG_SIZE (else they are decoded to IMG_SIZE).
_C.DATA.STORED_SIZE = 96
# Resampling used when resizing: nearest, bilinear or bicubic. Rotation, perspective and the
# augmentation policies, which torch cannot warp bicubically, use bilinear for bicubic.
_C.DATA.INTERPOLATION = "bilinear"
# Pin host memory so that copies to the GPU run asynchronously.
_C.DATA.PIN_MEMORY = True
# Loader worker processes; -1 picks min(8, CPU cores available).
_C.DATA.NUM_WORKERS = -1
# Keep workers alive between epochs instead of re-forking them.
_C.DATA.PERSISTENT_WORKERS = True
# Where the train augmentation runs: cpu (per image, in the loader workers), device (on whole
# uint8 batches on the training device, each image with its own random parameters) or auto
# (device on a GPU, or with DATA.CACHE). Batched are the random-resized crop (bilinear), padded
# crop, both flips, colour jitter with hue, grayscale and random erasing; with any other AUG step
# on, auto runs everything per image.
_C.DATA.AUG_DEVICE = "auto"
# Hold each whole split in memory as uint8 and gather batches from it by index, with no loader
# workers: none, ram (host memory) or device (the GPU's memory). Augments on the device.
_C.DATA.CACHE = "none"
# Download cifar10/cifar100 into DATA_PATH when the files are missing.
_C.DATA.DOWNLOAD = False
# DATA.DATASET csv (Kaggle's layout), paths relative to DATA_PATH. The CSV of ids and labels:
_C.DATA.TRAIN_CSV = "train.csv"
# Its column of image ids.
_C.DATA.CSV_ID = "id"
# Its column of labels (any text, or numbers); the classes are the distinct labels, sorted.
_C.DATA.CSV_LABEL = "label"
# The folder of the train images.
_C.DATA.IMAGE_DIR = "train"
# The ending added to an id to name its file, e.g. .jpg ("" when the ids already end in one).
_C.DATA.IMAGE_EXT = ""
# The images to predict (csv): every image in TEST_DIR, in sorted order, unless TEST_CSV is set.
_C.DATA.TEST_DIR = "test"
# A CSV (e.g. sample_submission.csv) whose CSV_ID column lists the test ids, in its order,
# looked up in TEST_DIR; "" for none.
_C.DATA.TEST_CSV = ""
# For data read from image files (imagefolder, csv): decode every file once when the data set
# opens and leave out the train and val images that cannot be read, listing them in the log;
# False stops the run at the first such file, naming it.
_C.DATA.SKIP_BAD_IMAGES = False
# Largest image, in pixels (width * height), that a file may hold. Its header is read before its
# pixels, so a crafted file (a decompression bomb) is refused, naming the file, without being decoded;
# with DATA.SKIP_BAD_IMAGES it is left out like an unreadable file. The default is PIL's own limit.
_C.DATA.MAX_IMAGE_PIXELS = 89_478_485
# Fraction of the train split held out as val (chosen from SEED); 0 validates on the test split.
_C.DATA.VAL_SPLIT = 0.0
# K-fold cross-validation: cut the train split (after HOLDOUT_CLASSES) into FOLDS stratified folds
# from SEED, the same folds for every run of one SEED, and validate on fold FOLD (0-based) while
# training on the others (before TRAIN_SUBSET); the folds' val_probs.csv are then the out-of-fold
# predictions (scripts/folds.py assembles them). The run folder's name ends in -fold<FOLD>.
# FOLDS 0 is off; otherwise 2 or more.
_C.DATA.FOLDS = 0
# The fold that validates, in [0, DATA.FOLDS); see DATA.FOLDS.
_C.DATA.FOLD = 0
# Train on part of the train split, chosen from SEED: a fraction in (0, 1), or a count of images
# (a whole number >= 1); 0 uses all of it. For studies of many short runs.
_C.DATA.TRAIN_SUBSET = 0.0
# Score on part of the split that validates (DATA.VAL_SPLIT's, else the data set's val or test
# split), chosen from SEED as TRAIN_SUBSET is: a fraction in (0, 1), or a count of images; 0
# scores all of it. The log, summary.json and curves.png say the scores come from a subset.
_C.DATA.VAL_SUBSET = 0.0
# Predict part of the test split (the end of a run, --export-embeddings test), chosen from SEED
# as TRAIN_SUBSET is; 0 predicts all of it. No submission.csv comes from a subset (Kaggle needs
# every row): a run then writes none, and --predict refuses it.
_C.DATA.TEST_SUBSET = 0.0
# Class names kept out of training entirely, e.g. [7, 8, 9] or ["alice", "bob"] (an open-set
# split): the model learns the other classes, and their train images are the unseen identities
# that verification pairs are drawn from (TEST.VERIFY_NUM_PAIRS). [] keeps every class.
_C.DATA.HOLDOUT_CLASSES = []
# Labelled verification pairs scored every epoch: a text file of `img_a img_b 0|1` lines (1: the
# same identity), image paths relative to DATA_PATH; the file itself is read from DATA_PATH when
# not absolute. Takes the place of drawn pairs. "" for none.
_C.DATA.VERIFY_PAIRS = ""
# Unlabelled verification pairs (`img_a img_b` lines, read as VERIFY_PAIRS) whose similarities
# go into verify_submission.csv at the end of the run and with --predict. "" for none.
_C.DATA.VERIFY_TEST_PAIRS = ""
# Train batches: random (a shuffle of the train split) or pk (P classes x K images each, for
# triplet and other metric losses: P = BATCH_SIZE / IMAGES_PER_CLASS).
_C.DATA.SAMPLER = "random"
# The K of DATA.SAMPLER pk: images of each class in a batch; classes with fewer are left out.
_C.DATA.IMAGES_PER_CLASS = 4

# -----------------------------------------------------------------------------
# Model
# -----------------------------------------------------------------------------
_C.MODEL = CN()
# Registered model name; `python main.py --list-models` prints them.
_C.MODEL.NAME = "lenet"
# Number of output classes; 0 takes the data set's class count.
_C.MODEL.NUM_CLASSES = 0
# Dropout probability of the dropout the architecture has: AlexNet's and VGG's two in the classifier
# (paper 0.5), GoogLeNet's (0.4), EfficientNet's (0.2 to 0.3) and MobileNetV2's (0.2) before it, and
# elsewhere one before the classifier (0). -1 keeps the paper's value.
_C.MODEL.DROP_RATE = -1.0
# Checkpoint to continue from (--resume): "auto" for the last.pth of the run tagged TAG, found
# under any experiment folder of OUTPUT; a run's last.pth continues that run; a file outside every
# run folder forks into a new one. The run keeps the checkpoint's config; only the keys in
# engine/resume.py RESUMABLE_KEYS may change.
_C.MODEL.RESUME = ""
# Stochastic depth rate of the last block (rising linearly from 0 over the blocks) for ConvNeXt,
# EfficientNet and the ResNet family; -1 keeps the model's paper default (0 for ResNets).
_C.MODEL.DROP_PATH_RATE = -1.0
# Stem: imagenet, cifar (keeps 32x32 inputs from shrinking to nothing), or auto (cifar at <= 64 px).
_C.MODEL.STEM = "auto"
# Weight initialisation: default (the model's paper init), kaiming, xavier or lecun.
_C.MODEL.INIT = "default"
# Start from weights: "" (none), a checkpoint of this project or a torchvision state_dict file, or
# "torchvision" to download torchvision's published ImageNet weights.
_C.MODEL.PRETRAINED = ""
# none trains everything; backbone trains only the classifier (a linear probe).
_C.MODEL.FREEZE = "none"
# ResNet family: zero-init the last BN of each residual branch, so blocks start as identities.
_C.MODEL.ZERO_INIT_RESIDUAL = False
# GoogLeNet: train with the two auxiliary classifiers (their loss weighted 0.3; not run at eval).
_C.MODEL.AUX_LOGITS = False
# MobileNetV2: width multiplier applied to every layer's channels.
_C.MODEL.WIDTH_MULT = 1.0
# Activation in place of the model's own, for LeNet, AlexNet, VGG, the ResNet family and DenseNet:
# relu, leaky_relu, gelu, silu (or swish), hardswish, mish or tanh; "" keeps the model's own.
_C.MODEL.ACT = ""
# ResNet family: DropBlock (Ghiasi et al., 2018) drop probability in stage 4, a quarter of it in
# stage 3, as the paper's code; training only. 0 disables; the paper uses 0.1 on ImageNet.
_C.MODEL.DROP_BLOCK_RATE = 0.0
# ResNet family: side of the squares DropBlock drops, in pixels; odd. Clamped to the largest odd
# side that fits the feature map. 7 as the paper's ResNet-50.
_C.MODEL.DROP_BLOCK_SIZE = 7

_C.MODEL.CONVNEXT = CN()
# ConvNeXt V1/V2 norm layer: layernorm, batchnorm or dyt (Dynamic Tanh).
_C.MODEL.CONVNEXT.NORM = "layernorm"
# Under torchrun, turn BatchNorm into SyncBatchNorm, so that batch statistics span every process
# (for small per-GPU batches); a single-process run has nothing to synchronise.
_C.MODEL.SYNC_BN = False
# Width of a learned embedding between the backbone and the classifier: linear + BatchNorm on the
# pooled features (as ArcFace's "E" head), which metric losses, verification and
# --export-embeddings use. 0 uses the pooled features themselves.
_C.MODEL.EMBED_DIM = 0

# -----------------------------------------------------------------------------
# Training
# -----------------------------------------------------------------------------
_C.TRAIN = CN()
# Epoch to start from when not resuming; the LR schedule starts at that point too.
_C.TRAIN.START_EPOCH = 0
# Total number of epochs.
_C.TRAIN.EPOCHS = 30
# Epochs of linear warmup from WARMUP_LR to LR.
_C.TRAIN.WARMUP_EPOCHS = 0
# Peak learning rate.
_C.TRAIN.LR = 1e-3
# Learning rate at the end of the cosine schedule.
_C.TRAIN.MIN_LR = 1e-5
# Learning rate at the start of the warmup.
_C.TRAIN.WARMUP_LR = 1e-6
# Weight decay (decoupled for adamw).
_C.TRAIN.WEIGHT_DECAY = 0.05
# Apply weight decay to norm layers and biases too (off, as is usual).
_C.TRAIN.DECAY_NORM_AND_BIAS = False
# Batches whose gradients are summed before each optimizer step; 0 or 1 means no accumulation.
_C.TRAIN.ACCUMULATION_STEPS = 1
# Clip the gradient norm to this value; 0 disables clipping.
_C.TRAIN.CLIP_GRAD = 0.0
# Mixed precision on CUDA: bf16, fp16 (with loss scaling) or off.
_C.TRAIN.MIXED_PRECISION = "bf16"
# Use the channels_last memory format on CUDA (faster convolutions on tensor cores).
_C.TRAIN.CHANNELS_LAST = True
# Compile the model with torch.compile on CUDA.
_C.TRAIN.COMPILE = False
# Let cuDNN benchmark convolution algorithms for the fixed input size.
_C.TRAIN.CUDNN_BENCHMARK = True
# End each epoch after this many optimizer updates (the LR schedule is planned for that many);
# 0 runs whole epochs.
_C.TRAIN.MAX_STEPS_PER_EPOCH = 0
# Updates whose loss is NaN or Inf are skipped and counted; after this many in a row the run stops
# (its last checkpoint is kept). 0 never stops. fp16 overflow steps, which the loss scaler skips
# by design, are not counted.
_C.TRAIN.MAX_NONFINITE = 10
# Label smoothing of the train loss (0.1 is the usual value; 0 is plain cross-entropy). It
# composes with mixup/cutmix's soft targets; val loss stays plain cross-entropy.
_C.TRAIN.LABEL_SMOOTHING = 0.0
# Stop when the val metric TEST.SELECT_METRIC has not improved for this many epochs (the report
# and submission then come from best.pth as usual); 0 trains every epoch.
_C.TRAIN.EARLY_STOP_PATIENCE = 0
# The loss: ce, arcface, cosface, triplet, or a sum of them such as ce+arcface. The metric losses
# act on the embedding; without a ce term the classifier still learns on the detached embedding
# (a linear probe), so val accuracy and submission.csv stay meaningful.
_C.TRAIN.LOSS = "ce"
# One weight per TRAIN.LOSS term, in order, e.g. (1.0, 0.5); () weighs every term 1.
_C.TRAIN.LOSS_WEIGHTS = ()

# ArcFace (Deng et al., CVPR 2019): softmax over s * cos(theta), with the target's angle + m.
_C.TRAIN.ARCFACE = CN()
# Additive angular margin m, in radians (the paper's 0.5).
_C.TRAIN.ARCFACE.MARGIN = 0.5
# Scale s of the cosine logits (the paper's 64).
_C.TRAIN.ARCFACE.SCALE = 64.0

# CosFace (Wang et al., CVPR 2018): softmax over s * cos(theta), with m taken off the target's cosine.
_C.TRAIN.COSFACE = CN()
# Additive cosine margin m (the paper's 0.35).
_C.TRAIN.COSFACE.MARGIN = 0.35
# Scale s of the cosine logits (the paper's 64).
_C.TRAIN.COSFACE.SCALE = 64.0

# Triplet loss (Schroff et al., FaceNet, CVPR 2015) on L2-normalised embeddings; needs DATA.SAMPLER pk.
_C.TRAIN.TRIPLET = CN()
# Margin alpha between the anchor-positive and anchor-negative distances (FaceNet's 0.2).
_C.TRAIN.TRIPLET.MARGIN = 0.2
# Which triplets of each batch count: batch_hard (each anchor's hardest positive and negative,
# Hermans et al. 2017), semihard (FaceNet's), or all.
_C.TRAIN.TRIPLET.MINER = "batch_hard"

# Exponential moving average of the weights (and BatchNorm buffers), updated after every
# optimizer update, scored on val every epoch beside the raw weights (val_acc1_ema); best.pth and
# the submission use whichever scored best.
_C.TRAIN.EMA = CN()
# EMA decay per update, e.g. 0.999 (the average spans about 1 / (1 - DECAY) updates); 0 is off.
_C.TRAIN.EMA.DECAY = 0.0
# Warm the decay up as min(DECAY, (1 + n) / (10 + n)) after n updates (TensorFlow's EMA with
# num_updates), so that short runs do not average in the random initialisation.
_C.TRAIN.EMA.WARMUP = True

# Stochastic weight averaging (Izmailov et al., 2018): an equal average of the weights at the end
# of every epoch from START_EPOCH on, its BatchNorm statistics recomputed over the train split at
# the end, then scored on val (val_acc1_swa) and used for the submission if it scores best.
_C.TRAIN.SWA = CN()
# First averaged epoch, counted from 0 as TRAIN.START_EPOCH; -1 is off.
_C.TRAIN.SWA.START_EPOCH = -1
# LR that torch's SWALR anneals to from START_EPOCH on, replacing TRAIN.LR_SCHEDULER from there.
_C.TRAIN.SWA.LR = 1e-4
# Epochs over which the LR anneals (cosine) to SWA.LR; 0 switches to it at once.
_C.TRAIN.SWA.ANNEAL_EPOCHS = 5

_C.TRAIN.LR_SCHEDULER = CN()
# Schedule after warmup: cosine, step, multistep, exponential, polynomial, constant, onecycle (its
# own warmup: WARMUP_EPOCHS does not apply) or plateau. Stepped every optimizer update; plateau
# also once per epoch on a val metric.
_C.TRAIN.LR_SCHEDULER.NAME = "cosine"
# For step: epochs between decays.
_C.TRAIN.LR_SCHEDULER.DECAY_EPOCHS = 30
# Factor applied at each decay: step, multistep (at each milestone), exponential (once per epoch),
# plateau (after PATIENCE epochs without improvement).
_C.TRAIN.LR_SCHEDULER.DECAY_RATE = 0.1
# For multistep: the epochs at which the LR is multiplied by DECAY_RATE, e.g. (100, 150).
_C.TRAIN.LR_SCHEDULER.MILESTONES = (30, 60, 90)
# For polynomial: the exponent of the decay from LR to MIN_LR (1 is linear).
_C.TRAIN.LR_SCHEDULER.POWER = 1.0
# For onecycle: the share of the run spent rising to LR (momentum falls meanwhile, then rises).
_C.TRAIN.LR_SCHEDULER.ONECYCLE_PCT_START = 0.3
# For plateau: the val metric watched, val_loss or val_acc1.
_C.TRAIN.LR_SCHEDULER.PLATEAU_METRIC = "val_loss"
# For plateau: epochs without improvement before the LR is multiplied by DECAY_RATE (never below
# TRAIN.MIN_LR).
_C.TRAIN.LR_SCHEDULER.PATIENCE = 10

_C.TRAIN.OPTIMIZER = CN()
# Optimizer: sgd, adam, adamw, rmsprop or radam.
_C.TRAIN.OPTIMIZER.NAME = "adamw"
# Epsilon for adam, adamw, rmsprop and radam.
_C.TRAIN.OPTIMIZER.EPS = 1e-8
# Betas for adam, adamw and radam.
_C.TRAIN.OPTIMIZER.BETAS = (0.9, 0.999)
# Momentum for sgd and rmsprop.
_C.TRAIN.OPTIMIZER.MOMENTUM = 0.9
# Nesterov momentum for sgd.
_C.TRAIN.OPTIMIZER.NESTEROV = True

# -----------------------------------------------------------------------------
# Train-time augmentation (eval splits get deterministic transforms only)
# -----------------------------------------------------------------------------
_C.AUG = CN()
# Pixels of zero padding around the image before a random crop back to IMG_SIZE; 0 disables.
_C.AUG.CROP_PADDING = 4
# Probability of a horizontal flip; 0 disables.
_C.AUG.HFLIP_PROB = 0.5
# Colour jitter strength for brightness, contrast and saturation; 0 disables.
_C.AUG.COLOR_JITTER = 0.4
# RandAugment as "rand-m{magnitude}-n{ops}" (timm style, e.g. rand-m9-n2); "" disables.
_C.AUG.RAND_AUGMENT = ""
# The train chain runs geometry, then the policies (AutoAugment, RandAugment, TrivialAugment,
# AugMix), then colour, then erasing, whatever order the keys are set in; data/transforms.py says why.
# Random-resized crop: the (min, max) share of the image's area kept, e.g. (0.08, 1.0), then resized
# to IMG_SIZE (aspect ratio 3/4 to 4/3). Replaces the plain resize; the padded crop still follows
# unless CROP_PADDING is 0. () or (0, 0) disables.
_C.AUG.RRC_SCALE = ()
# Probability of a vertical flip; 0 disables.
_C.AUG.VFLIP_PROB = 0.0
# Rotation by an angle drawn from [-ROTATION, ROTATION] degrees, corners filled black; 0 disables.
_C.AUG.ROTATION = 0.0
# Probability of a random perspective warp (corners filled black); 0 disables.
_C.AUG.PERSPECTIVE_PROB = 0.0
# Perspective strength in [0, 1]: how far each corner may move, as a share of half the side.
_C.AUG.PERSPECTIVE_DISTORTION = 0.5
# Colour jitter of the hue, by up to this share of the colour wheel, in [0, 0.5]; 0 disables.
_C.AUG.COLOR_JITTER_HUE = 0.0
# Probability of turning the image gray (all three channels kept); 0 disables.
_C.AUG.GRAYSCALE_PROB = 0.0
# Probability of a gaussian blur; 0 disables.
_C.AUG.BLUR_PROB = 0.0
# Gaussian blur kernel side in pixels: odd, and below 2 * IMG_SIZE (SimCLR uses ~10% of IMG_SIZE).
_C.AUG.BLUR_KERNEL = 3
# Gaussian blur sigma, drawn from this (min, max) range in pixels for each image.
_C.AUG.BLUR_SIGMA = (0.1, 2.0)
# AutoAugment with the policy searched on imagenet, cifar10 or svhn; "" disables.
_C.AUG.AUTO_AUGMENT = ""
# TrivialAugment (torchvision's TrivialAugmentWide): one random op at a random strength per image.
_C.AUG.TRIVIAL_AUGMENT = False
# AugMix severity, 1 (mild) to 10 (torchvision's default is 3); 0 disables.
_C.AUG.AUGMIX = 0
# Probability of random erasing (cutout) of one rectangle; 0 disables.
_C.AUG.ERASE_PROB = 0.0
# Random erasing: the (min, max) share of the image's area erased.
_C.AUG.ERASE_SCALE = (0.02, 0.33)
# Random erasing: the uint8 pixel value (0 to 255) written into the rectangle. Pixels are uint8
# here, before normalisation, so torchvision's "random" (standard-normal noise) is not offered.
_C.AUG.ERASE_VALUE = 0

# Mixup alpha (Zhang et al. 2018) of the Beta distribution the mixing weight is drawn from, on
# whole device batches after normalisation (torchvision v2.MixUp); 0 disables. 0.2 is usual.
_C.AUG.MIXUP = 0.0
# CutMix alpha (Yun et al. 2019, v2.CutMix); 0 disables. 1.0 is usual.
_C.AUG.CUTMIX = 0.0
# Probability that a batch is mixed at all when MIXUP or CUTMIX is on.
_C.AUG.MIX_PROB = 1.0
# With both on: probability of CutMix rather than Mixup for a mixed batch.
_C.AUG.MIX_SWITCH_PROB = 0.5

# -----------------------------------------------------------------------------
# Evaluation
# -----------------------------------------------------------------------------
_C.TEST = CN()
# Resize to IMG_SIZE / 0.875 and centre-crop IMG_SIZE (ImageNet style) instead of resizing.
_C.TEST.CROP = False
# Read the val split in order; takes precedence over SHUFFLE.
_C.TEST.SEQUENTIAL = False
# Shuffle the val split (the test split is always read in order, for the submission).
_C.TEST.SHUFFLE = False
# Test-time augmentation (none, hflip, five_crop, ten_crop): the softmaxes of V views of each image
# (V = 1, 2, 5, 10) averaged at --eval / --predict, in the final val report and in submission.csv.
_C.TEST.TTA = "none"
# Apply TEST.TTA in the per-epoch val pass too: V times its compute, and best.pth is chosen on TTA acc@1.
_C.TEST.TTA_VAL = False
# Temperature T that divides the log-probabilities (after TTA) before the softmax of the saved
# probabilities (val_probs.csv, test_probs.csv) and of the probs and topk submissions; the argmax
# labels stay as they are. 1 leaves them as the model gives them; a positive number such as 1.5
# softens them (> 1) or sharpens them (< 1); auto fits T on the val split at the end of the run
# (and at --eval / --predict), by LBFGS on the NLL (Guo et al. 2017), and logs it. Text, since
# it holds a number or auto.
_C.TEST.TEMPERATURE = "1"
# Verification pairs drawn (SEED; half of the same class) every epoch from the held-out classes
# (DATA.HOLDOUT_CLASSES), else from the val split, and scored as ROC AUC, EER, TAR at
# VERIFY_FAR and best-threshold accuracy (verify_* metrics, roc.png). 0 draws none.
_C.TEST.VERIFY_NUM_PAIRS = 0
# The false accept rate that verify_tar (the true accept rate) is read at.
_C.TEST.VERIFY_FAR = 1e-3
# Competition metrics scored on val every epoch beside acc@1 and acc@5, from every image's class
# probabilities (after TEST.TTA with TTA_VAL), e.g. ["macro_f1", "log_loss"]: macro_f1 (scikit-learn's
# macro-averaged F1, 0 to 1), log_loss (scikit-learn's, over every class), top_k_accuracy (in %,
# k = TEST.TOP_K) and ece (expected calibration error over 15 equal-width confidence bins, 0 to 1).
# Each is logged, recorded as val_<name> in metrics.jsonl and W&B, and its best in summary.json.
_C.TEST.METRICS = []
# The k of top_k_accuracy in TEST.METRICS.
_C.TEST.TOP_K = 3
# The val metric that makes a checkpoint best.pth (and drives early stopping): val_acc1,
# verify_auc (higher is better), verify_eer (lower is better), or val_<name> of a metric in
# TEST.METRICS (lower is better for val_log_loss and val_ece, higher for the others).
_C.TEST.SELECT_METRIC = "val_acc1"

# -----------------------------------------------------------------------------
# Kaggle submission
# -----------------------------------------------------------------------------
_C.SUBMISSION = CN()
# Header line of submission.csv: the id column, then the predicted-class column.
_C.SUBMISSION.HEADER = "Id,Category"
# The id of each row: index (0-based row number of the test split) or file (the test image's
# file name without its ending, or its id in DATA.TEST_CSV; for imagefolder and csv data).
_C.SUBMISSION.ID = "index"
# The predicted class as its index, or as its name (the class folder, or the label in the CSV).
_C.SUBMISSION.LABELS = "index"
# What each row of submission.csv holds: label (SUBMISSION.HEADER's two columns: the id, then the
# predicted class), probs (the id column named as HEADER's first, then one column per class named by
# the class names: the probability of each class, lossless) or topk (HEADER's two columns: the id,
# then the SUBMISSION.TOPK most probable classes, best first, separated by spaces, as MAP@k wants).
# label and topk write each class as SUBMISSION.LABELS says.
_C.SUBMISSION.FORMAT = "label"
# The k of SUBMISSION.FORMAT topk: classes per row, at least 1 and at most the number of classes.
_C.SUBMISSION.TOPK = 5
# Header of verify_submission.csv (DATA.VERIFY_TEST_PAIRS): the pair's id column, then its
# cosine similarity.
_C.SUBMISSION.VERIFY_HEADER = "Id,Category"
# The id of each verification pair: index (0-based line of the pairs) or pair ("img_a img_b" as
# written in the file).
_C.SUBMISSION.VERIFY_ID = "index"

# -----------------------------------------------------------------------------
# Weights & Biases
# -----------------------------------------------------------------------------
_C.WANDB = CN()
# auto (online when W&B finds a login: WANDB_API_KEY or a `wandb login` entry in ~/.netrc; offline
# otherwise; a WANDB_MODE variable decides instead), online, offline (sync later with `wandb sync`) or disabled.
_C.WANDB.MODE = "auto"
# W&B project name.
_C.WANDB.PROJECT = "vision-zoo"
# W&B entity (user or team); "" uses your default.
_C.WANDB.ENTITY = ""
# W&B group that gathers related runs (scripts/sweep.py sets it to the sweep's name); "" for none.
_C.WANDB.GROUP = ""

# -----------------------------------------------------------------------------
# Checkpoints
# -----------------------------------------------------------------------------
_C.SAVE = CN()
# Checkpoints kept after the run: best_and_last, best, last or none. last.pth is written during
# every run, so that it can resume, and removed at its end unless kept. Without best.pth the
# submission and the val report come from the final weights.
_C.SAVE.CHECKPOINTS = "best_and_last"

# -----------------------------------------------------------------------------
# Run
# -----------------------------------------------------------------------------
# Root folder for runs; a run lives in OUTPUT/<MODEL.NAME>_<DATA.DATASET>/<TAG>.
_C.OUTPUT = "output"
# Name of this run's folder; "" uses the start time.
_C.TAG = ""
# Save last.pth every SAVE_FREQ epochs (and always after the final epoch).
_C.SAVE_FREQ = 1
# Write a progress line to log.txt every PRINT_FREQ iterations.
_C.PRINT_FREQ = 10
# Seed for Python, NumPy and torch, for the val split and for the shuffling order.
_C.SEED = 0
# Evaluate the checkpoint given by MODEL.RESUME on the val split and write a report beside it (--eval).
_C.EVAL_MODE = False
# Device: auto (CUDA when available), cpu, cuda or cuda:N.
_C.DEVICE = "auto"


def get_default_config() -> CN:
    """A mutable copy of the defaults."""
    return _C.clone()


def get_config(cfg_file: str | None = None, opts: Sequence[str] | None = None, base_yaml: str | None = None) -> CN:
    """Resolve defaults < `base_yaml` < BASE chain < `cfg_file` < `opts` into a frozen CfgNode.

    `opts` is a flat list `[KEY, VALUE, KEY, VALUE, ...]` with string values, as typed after
    `--opts`; keys match case-insensitively. `base_yaml` is a resolved config as YAML text (the
    one a checkpoint stores). Raises UserError for a missing file, an unknown key or name, or a
    value of the wrong type.
    """
    cfg = get_default_config()
    if base_yaml:
        _merge_dict(cfg, _stored_config(base_yaml), prefix="", source="the checkpoint's config")
    if cfg_file:
        _merge_file(cfg, cfg_file, chain=(), merged=set())
    if opts:
        _merge_opts(cfg, list(opts))
    _check_values(cfg)
    cfg.freeze()
    return cfg


def opts_from_flags(flags: dict[str, Any]) -> list[str]:
    """KEY VALUE pairs, as get_config's `opts` takes them, for the command-line flags that set a
    config key ({"DATA.BATCH_SIZE": 64, "TAG": None, ...}); keys whose flag was not given (None)
    are left out. main.py places them before the user's --opts, so --opts wins."""
    # repr() keeps strings as strings when the config decodes literals (a TAG of "1e3" stays text).
    return [item for key, value in flags.items() if value is not None
            for item in (key, repr(value) if isinstance(value, str) else str(value))]


def flatten(node: dict, prefix: str = "") -> dict[str, Any]:
    """{"DATA.BATCH_SIZE": 128, ...}: every leaf of a config tree (a CfgNode, or the plain dict a
    config.yaml loads as) under its dotted key."""
    leaves = {}
    for key, value in node.items():
        if isinstance(value, dict):
            leaves.update(flatten(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def changed_from_defaults(cfg: CN) -> dict[str, Any]:
    """The leaves of `cfg` whose values differ from the defaults in this file."""
    defaults = flatten(_C)
    return {key: value for key, value in flatten(cfg).items() if defaults.get(key) != value}


def _merge_file(cfg: CN, path: str, chain: tuple[str, ...], merged: set[str]) -> None:
    """Merge `path` after its BASE files. A file reached twice (two BASE files sharing a base) is
    merged once, the first time, so that it cannot undo what the files after it set."""
    real, shown = os.path.realpath(path), _printable(path)
    if real in chain:
        raise UserError(f"config file {shown} inherits from itself through BASE; remove the cycle")
    if real in merged:
        return
    if not os.path.isfile(path):
        raise UserError(f"config file not found: {shown}; check the path given to --cfg or BASE")
    data = _read_yaml_file(path)
    if not isinstance(data, dict):
        raise UserError(f"config file {shown} must hold a mapping of KEY: value, not {type(data).__name__}")
    bases = data.pop("BASE", [""]) or [""]
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(base, str) for base in bases):
        raise UserError(f"BASE in {shown} must be a file name or a list of them, e.g. BASE: [base.yaml]; "
                        f"got {_shown(bases)}")
    for base in bases:
        if base:
            _merge_file(cfg, os.path.join(os.path.dirname(path), base), chain + (real,), merged)
    _merge_dict(cfg, data, prefix="", source=shown)
    merged.add(real)


def _read_yaml_file(path: str) -> Any:
    """The YAML document in `path`, or UserError naming the file and what is wrong with it."""
    shown = _printable(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"config file {shown} cannot be read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise UserError(f"config file {shown} is not UTF-8 text (line {line} holds the byte {data[e.start]:#04x}); "
                        f"save it as UTF-8") from None
    try:
        return load_yaml(text)
    except AliasExpansionError as e:
        raise UserError(f"config file {shown} is refused at line {e.problem_mark.line + 1}: {e.problem}; "
                        f"write the values out instead of aliasing them") from None
    except yaml.YAMLError as e:
        mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise UserError(f"config file {shown} is not valid YAML{where}" + (f" ({problem})" if problem else "")
                        + "; fix it") from None


def _stored_config(text: str) -> dict:
    """A checkpoint's config (YAML text) as a mapping. utils.checkpoint_io checks it when the
    checkpoint is loaded, naming the file; this catches what reaches get_config another way."""
    try:
        data = load_yaml(text) or {}
    except yaml.YAMLError:
        data = None
    if not isinstance(data, dict):
        raise UserError("the checkpoint's config is not a YAML mapping of KEY: value; pass a last.pth or best.pth "
                        "written by main.py")
    return data


def _merge_dict(node: CN, data: dict, prefix: str, source: str) -> None:
    for key, value in data.items():
        key = _resolve_key(node, str(key), f"{prefix}{key}")
        full_key = f"{prefix}{key}"
        if isinstance(node[key], CN):
            if not isinstance(value, dict):
                raise UserError(f"{full_key} is a section in {source}; give it KEY: value pairs, not {value!r}")
            _merge_dict(node[key], value, prefix=f"{full_key}.", source=source)
        else:
            node[key] = _parse_value(value, node[key], full_key)


def _merge_opts(cfg: CN, opts: list[str]) -> None:
    if len(opts) % 2:
        raise UserError(f"--opts takes KEY VALUE pairs, but {opts[-1]!r} has no value")
    for typed_key, raw in zip(opts[0::2], opts[1::2]):
        node, full_key, leaf = resolve_key_path(cfg, typed_key)
        if isinstance(node[leaf], CN):
            raise UserError(f"{full_key} is a section; set one of its keys, e.g. {full_key}.{next(iter(node[leaf]))}")
        node[leaf] = _parse_value(raw, node[leaf], full_key)


def resolve_key_path(cfg: CN, typed_key: str) -> tuple[CN, str, str]:
    """(parent node, canonical dotted key, leaf name) for a key typed in any case, e.g. train.lr."""
    node, resolved = cfg, []
    parts = typed_key.split(".")
    for depth, part in enumerate(parts):
        part = _resolve_key(node, part, ".".join(resolved + parts[depth:depth + 1]))
        resolved.append(part)
        if depth < len(parts) - 1:
            if not isinstance(node[part], CN):
                raise UserError(f"{'.'.join(resolved)} is a key, not a section; see config.py for the valid keys")
            node = node[part]
    return node, ".".join(resolved), resolved[-1]


def _all_keys(node: CN, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys.append(f"{prefix}{key}")
        if isinstance(value, CN):
            keys.extend(_all_keys(value, f"{prefix}{key}."))
    return keys


def _resolve_key(node: CN, key: str, full_key: str) -> str:
    """`key` as the config spells it (matching case-insensitively), or UserError with a suggestion."""
    if key in node:
        return key
    folded = [name for name in node if name.lower() == key.lower()]
    if len(folded) == 1:
        return folded[0]
    close = difflib.get_close_matches(full_key.upper(), _all_keys(_C), n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]}?" if close else "; see config.py for the valid keys"
    raise UserError(f"unknown config key {_printable(full_key)}{hint}")


def _decode(value: Any) -> Any:
    """Strings from YAML or the command line may spell literals: '1e-3', 'True', '(0.9, 0.999)'."""
    if not isinstance(value, str):
        return value
    try:
        with warnings.catch_warnings():  # '\d' is text here, not a string literal to warn about
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)  # its name before Python 3.12
            return ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return value  # not a literal (or one nested too deeply to be one): the text itself


_TYPE_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
               tuple: "a list", list: "a list"}

# What the items of each list key may be: numbers (float; integers are taken as floats), whole
# numbers (int), or text. Class names may be text or numbers, as the data names its classes.
_ITEM_TYPES: dict[str, tuple[type, ...]] = {
    "BASE": (str,),
    "DATA.HOLDOUT_CLASSES": (str, int, float),
    "TEST.METRICS": (str,),
    "TRAIN.LOSS_WEIGHTS": (float,),
    "TRAIN.LR_SCHEDULER.MILESTONES": (int,),
    "TRAIN.OPTIMIZER.BETAS": (float,),
    "AUG.RRC_SCALE": (float,),
    "AUG.BLUR_SIGMA": (float,),
    "AUG.ERASE_SCALE": (float,),
}
_ITEM_NAMES = {(str,): "text", (int,): "whole numbers", (float,): "numbers", (str, int, float): "names or numbers"}


def _printable(text: str) -> str:
    """`text` (a key or a path as typed) for a one-line message: as is, or quoted with its
    line breaks and other control characters escaped."""
    return text if text.isprintable() else repr(text)


def _shown(value: Any, limit: int = 60) -> str:
    """repr(value) cut to `limit` characters, for an error line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _parse_value(raw: Any, default: Any, full_key: str) -> Any:
    """`raw` (from YAML or the command line) as the type of the key's default.

    Text for a text key stays as typed even when it looks like a number (TAG 1e3, WANDB.PROJECT
    0.10); decoding it would rewrite it as 1000.0 or 0.1.
    """
    value = _decode(raw)
    if isinstance(default, str) and isinstance(raw, str) and not isinstance(value, str):
        return raw
    return _coerce(value, default, full_key)


def _coerce(value: Any, default: Any, full_key: str) -> Any:
    """Return `value` converted to the default's type, or raise UserError naming the key."""
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return _as_float(value, full_key)
    if expected in (tuple, list) and isinstance(value, (tuple, list)):
        return expected(_coerce_item(item, default, full_key) for item in value)
    if expected is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # names such as TAG: 2024 or DATA_PATH: 1
    if type(value) is expected:
        return value
    raise UserError(f"{full_key} expects {_TYPE_NAMES.get(expected, expected.__name__)} "
                    f"(default {default!r}), got {_shown(value)}")


def _coerce_item(item: Any, default: Any, full_key: str) -> Any:
    """One item of the list key `full_key`, as _ITEM_TYPES says it may be, or UserError."""
    allowed = _ITEM_TYPES[full_key]
    if type(item) in allowed:
        return item
    if float in allowed and type(item) is int:
        return _as_float(item, full_key)
    raise UserError(f"{full_key} expects a list of {_ITEM_NAMES[allowed]}; got the item {_shown(item)} "
                    f"(default {default!r})")


def _as_float(value: int, full_key: str) -> float:
    """The integer `value` as the float it equals, or UserError where no float equals it."""
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if number != value:  # above 2**53 most integers fall between two floats
        raise UserError(f"{full_key} expects a number, and {_shown(value)} has no exact float value; write it "
                        f"with a decimal point or exponent (e.g. 1e16) to mean the nearest one")
    return number


def _choices() -> dict[str, Sequence[str]]:
    """Keys that name one of a fixed set of things, and the valid names."""
    import models  # noqa: F401  (importing the zoo fills the model registry)
    from data.registry import DATASETS
    from models.registry import list_models
    from optimizer import OPTIMIZERS, PLATEAU_METRICS, SCHEDULERS
    from models.losses import TRIPLET_MINERS
    from evaluation.selection import SELECT_METRICS
    from evaluation.tta import TTA_MODES
    from evaluation.submission import SUBMISSION_FORMATS

    return {
        "DATA.DATASET": list(DATASETS),
        "DATA.INTERPOLATION": ("nearest", "bilinear", "bicubic"),
        "DATA.AUG_DEVICE": ("auto", "cpu", "device"),
        "DATA.CACHE": ("none", "ram", "device"),
        "MODEL.NAME": list_models(),
        "MODEL.STEM": ("auto", "imagenet", "cifar"),
        "MODEL.INIT": ("default", "kaiming", "xavier", "lecun"),
        "MODEL.FREEZE": ("none", "backbone"),
        "MODEL.CONVNEXT.NORM": ("layernorm", "batchnorm", "dyt"),
        "TRAIN.MIXED_PRECISION": ("bf16", "fp16", "off"),
        "TRAIN.LR_SCHEDULER.NAME": SCHEDULERS,
        "TRAIN.LR_SCHEDULER.PLATEAU_METRIC": PLATEAU_METRICS,
        "TRAIN.OPTIMIZER.NAME": OPTIMIZERS,
        "WANDB.MODE": ("auto", "online", "offline", "disabled"),
        "SAVE.CHECKPOINTS": ("best_and_last", "best", "last", "none"),
        "TEST.TTA": TTA_MODES,
        "SUBMISSION.ID": ("index", "file"),
        "SUBMISSION.LABELS": ("index", "name"),
        "SUBMISSION.FORMAT": SUBMISSION_FORMATS,
        "SUBMISSION.VERIFY_ID": ("index", "pair"),
        "DATA.SAMPLER": ("random", "pk"),
        "TRAIN.TRIPLET.MINER": TRIPLET_MINERS,
        "TEST.SELECT_METRIC": SELECT_METRICS,
    }


def _is_positive_range(values: Sequence, high: float) -> bool:
    """`values` is two numbers (min, max) with 0 < min <= max <= high."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    return len(values) == 2 and numbers and 0 < values[0] <= values[1] <= high


def _is_subset(value: float) -> bool:
    """`value` is a DATA.*_SUBSET: 0 (all), a fraction in (0, 1), or a whole number of images."""
    return value == 0 or 0 < value < 1 or (value >= 1 and float(value).is_integer())


def _fold_checks(data: CN) -> list[tuple[bool, str]]:
    """(holds, message if not) for DATA.FOLDS and DATA.FOLD."""
    if data.FOLDS == 0:
        return [(data.FOLD == 0, f"DATA.FOLD {data.FOLD} needs DATA.FOLDS, the number of folds; set DATA.FOLDS "
                                 f"(e.g. 5), or leave DATA.FOLD at 0")]
    return [
        (data.FOLDS >= 2, f"DATA.FOLDS must be 2 or more folds, or 0 (off); got {data.FOLDS}"),
        (0 <= data.FOLD < data.FOLDS,
         f"DATA.FOLD must be a fold in [0, DATA.FOLDS = {data.FOLDS}), counted from 0; got {data.FOLD}"),
        (data.VAL_SPLIT == 0, f"DATA.FOLDS validates on a fold of train, and DATA.VAL_SPLIT {data.VAL_SPLIT} holds "
                              f"out another part of it; set DATA.VAL_SPLIT 0, or DATA.FOLDS 0"),
        (data.VAL_SUBSET == 0, f"DATA.FOLDS scores the whole fold, so that the folds' predictions cover every "
                               f"train image once, and DATA.VAL_SUBSET {data.VAL_SUBSET} scores part of it; set "
                               f"DATA.VAL_SUBSET 0, or DATA.FOLDS 0"),
    ]


def _metric_checks(test: CN) -> list[tuple[bool, str]]:
    """(holds, message if not) for TEST.METRICS, TEST.TOP_K and a TEST.SELECT_METRIC among them."""
    selected = test.SELECT_METRIC.removeprefix("val_")
    return [
        (test.SELECT_METRIC == "val_acc1" or test.SELECT_METRIC.startswith("verify_") or selected in test.METRICS,
         f"TEST.SELECT_METRIC {test.SELECT_METRIC} needs {selected} scored every epoch; add it to TEST.METRICS "
         f"(e.g. TEST.METRICS \"['{selected}']\"), or select on val_acc1"),
        (test.TOP_K >= 1, f"TEST.TOP_K must be at least 1 (the k of top_k_accuracy); got {test.TOP_K}"),
    ]


def _data_model_and_run_checks(cfg: CN) -> list[tuple[bool, str]]:
    """(holds, message if not) for the DATA, MODEL, SUBMISSION and run keys."""
    return [
        (cfg.DATA.BATCH_SIZE >= 1, "DATA.BATCH_SIZE must be at least 1"),
        (cfg.DATA.IMG_SIZE >= 8, "DATA.IMG_SIZE must be at least 8 pixels"),
        (cfg.DATA.MAX_IMAGE_PIXELS >= 1, "DATA.MAX_IMAGE_PIXELS must be at least 1, e.g. 89478485 (PIL's limit)"),
        (0.0 <= cfg.DATA.VAL_SPLIT < 1.0, "DATA.VAL_SPLIT must be in [0, 1)"),
        *_fold_checks(cfg.DATA),
        *[(_is_subset(cfg.DATA[key]),
           f"DATA.{key} must be a fraction in (0, 1), a whole number of images, or 0 for all; got {cfg.DATA[key]}")
          for key in ("TRAIN_SUBSET", "VAL_SUBSET", "TEST_SUBSET")],
        (cfg.DATA.STORED_SIZE in (96, 224) or cfg.DATA.DATASET.lower() != "medium_imagenet",
         "DATA.STORED_SIZE must be 96 or 224, the sizes MediumImageNet comes in"),
        (cfg.DATA.STORED_SIZE >= 8, "DATA.STORED_SIZE must be at least 8 pixels"),
        (cfg.MODEL.WIDTH_MULT > 0, "MODEL.WIDTH_MULT must be positive"),
        (cfg.MODEL.DROP_RATE == -1.0 or 0.0 <= cfg.MODEL.DROP_RATE < 1.0,
         "MODEL.DROP_RATE must be in [0, 1), or -1 for the model's default"),
        (cfg.MODEL.DROP_PATH_RATE == -1.0 or 0.0 <= cfg.MODEL.DROP_PATH_RATE < 1.0,
         "MODEL.DROP_PATH_RATE must be in [0, 1), or -1 for the model's default"),
        (0.0 <= cfg.MODEL.DROP_BLOCK_RATE < 1.0, "MODEL.DROP_BLOCK_RATE must be in [0, 1); 0 disables it"),
        (cfg.MODEL.DROP_BLOCK_SIZE >= 1 and cfg.MODEL.DROP_BLOCK_SIZE % 2 == 1,
         f"MODEL.DROP_BLOCK_SIZE must be an odd number of pixels, e.g. 7; got {cfg.MODEL.DROP_BLOCK_SIZE}"),
        (len(cfg.SUBMISSION.HEADER.split(",")) == 2, "SUBMISSION.HEADER must name two columns, e.g. Id,Category"),
        (cfg.SUBMISSION.TOPK >= 1, f"SUBMISSION.TOPK must be at least 1 class per row; got {cfg.SUBMISSION.TOPK}"),
        (len(cfg.SUBMISSION.VERIFY_HEADER.split(",")) == 2,
         "SUBMISSION.VERIFY_HEADER must name two columns, e.g. Id,Category"),
        (cfg.MODEL.EMBED_DIM >= 0, "MODEL.EMBED_DIM must be 0 (the pooled features) or a width such as 512"),
        (not (cfg.MODEL.EMBED_DIM and cfg.MODEL.AUX_LOGITS),
         "MODEL.AUX_LOGITS cannot be combined with MODEL.EMBED_DIM: the auxiliary heads bypass the embedding; "
         "switch one off"),
        (cfg.DATA.IMAGES_PER_CLASS >= 1, "DATA.IMAGES_PER_CLASS must be at least 1"),
        (cfg.DATA.SAMPLER != "pk" or cfg.DATA.BATCH_SIZE % cfg.DATA.IMAGES_PER_CLASS == 0,
         f"DATA.SAMPLER pk fills each batch with DATA.IMAGES_PER_CLASS = {cfg.DATA.IMAGES_PER_CLASS} images of "
         f"each class, so DATA.BATCH_SIZE ({cfg.DATA.BATCH_SIZE}) must be a multiple of it"),
        (cfg.TEST.VERIFY_NUM_PAIRS >= 0, "TEST.VERIFY_NUM_PAIRS must be 0 (none) or more"),
        (0.0 < cfg.TEST.VERIFY_FAR < 1.0, "TEST.VERIFY_FAR must be a false accept rate in (0, 1), e.g. 1e-3"),
        (not cfg.TEST.SELECT_METRIC.startswith("verify_") or cfg.TEST.VERIFY_NUM_PAIRS > 0
         or bool(cfg.DATA.VERIFY_PAIRS),
         f"TEST.SELECT_METRIC {cfg.TEST.SELECT_METRIC} needs verification pairs scored every epoch; set "
         f"TEST.VERIFY_NUM_PAIRS (e.g. 3000) or DATA.VERIFY_PAIRS, or select on val_acc1"),
        *_metric_checks(cfg.TEST),
        (cfg.SAVE_FREQ >= 1, "SAVE_FREQ must be at least 1"),
        (cfg.PRINT_FREQ >= 1, "PRINT_FREQ must be at least 1"),
    ]


def _train_checks(cfg: CN) -> list[tuple[bool, str]]:
    """(holds, message if not) for the TRAIN keys: length, LR and its schedule, averaging."""
    return [
        (cfg.TRAIN.EPOCHS >= 1, "TRAIN.EPOCHS must be at least 1"),
        (0 <= cfg.TRAIN.START_EPOCH < cfg.TRAIN.EPOCHS, "TRAIN.START_EPOCH must be in [0, TRAIN.EPOCHS)"),
        (cfg.TRAIN.LR > 0, "TRAIN.LR must be positive"),
        (cfg.TRAIN.WARMUP_EPOCHS >= 0, "TRAIN.WARMUP_EPOCHS must be 0 or more"),
        (cfg.TRAIN.MAX_STEPS_PER_EPOCH >= 0, "TRAIN.MAX_STEPS_PER_EPOCH must be 0 (whole epochs) or more"),
        (cfg.TRAIN.MAX_NONFINITE >= 0, "TRAIN.MAX_NONFINITE must be 0 (never stop) or more"),
        (cfg.TRAIN.EARLY_STOP_PATIENCE >= 0, "TRAIN.EARLY_STOP_PATIENCE must be 0 (off) or more epochs"),
        (0.0 <= cfg.TRAIN.LABEL_SMOOTHING < 1.0, "TRAIN.LABEL_SMOOTHING must be in [0, 1)"),
        (0.0 <= cfg.TRAIN.EMA.DECAY < 1.0, "TRAIN.EMA.DECAY must be in [0, 1), e.g. 0.999; 0 is off"),
        (cfg.TRAIN.SWA.START_EPOCH == -1 or 0 <= cfg.TRAIN.SWA.START_EPOCH < cfg.TRAIN.EPOCHS,
         f"TRAIN.SWA.START_EPOCH must be an epoch in [0, TRAIN.EPOCHS = {cfg.TRAIN.EPOCHS}), counted from 0, or -1 "
         f"(off); got {cfg.TRAIN.SWA.START_EPOCH}"),
        (cfg.TRAIN.SWA.LR > 0, "TRAIN.SWA.LR must be positive"),
        (cfg.TRAIN.SWA.ANNEAL_EPOCHS >= 0, "TRAIN.SWA.ANNEAL_EPOCHS must be 0 or more"),
        (0.0 < cfg.TRAIN.LR_SCHEDULER.DECAY_RATE <= 1.0, "TRAIN.LR_SCHEDULER.DECAY_RATE must be in (0, 1]"),
        (all(b > a for a, b in zip(cfg.TRAIN.LR_SCHEDULER.MILESTONES, cfg.TRAIN.LR_SCHEDULER.MILESTONES[1:]))
         and all(m > 0 for m in cfg.TRAIN.LR_SCHEDULER.MILESTONES),
         "TRAIN.LR_SCHEDULER.MILESTONES must be increasing positive epochs, e.g. (100, 150)"),
        (cfg.TRAIN.LR_SCHEDULER.POWER > 0, "TRAIN.LR_SCHEDULER.POWER must be positive"),
        (0.0 < cfg.TRAIN.LR_SCHEDULER.ONECYCLE_PCT_START < 1.0,
         "TRAIN.LR_SCHEDULER.ONECYCLE_PCT_START must be in (0, 1)"),
        (cfg.TRAIN.LR_SCHEDULER.PATIENCE >= 0, "TRAIN.LR_SCHEDULER.PATIENCE must be 0 or more epochs"),
        (len(cfg.TRAIN.OPTIMIZER.BETAS) == 2 and all(0.0 <= beta < 1.0 for beta in cfg.TRAIN.OPTIMIZER.BETAS),
         f"TRAIN.OPTIMIZER.BETAS must hold two numbers in [0, 1), e.g. (0.9, 0.999); got {cfg.TRAIN.OPTIMIZER.BETAS}"),
        (cfg.TRAIN.ARCFACE.SCALE > 0 and cfg.TRAIN.COSFACE.SCALE > 0,
         "TRAIN.ARCFACE.SCALE and TRAIN.COSFACE.SCALE must be positive, e.g. 64"),
        (cfg.TRAIN.ARCFACE.MARGIN >= 0 and cfg.TRAIN.COSFACE.MARGIN >= 0 and cfg.TRAIN.TRIPLET.MARGIN >= 0,
         "TRAIN.ARCFACE.MARGIN, TRAIN.COSFACE.MARGIN and TRAIN.TRIPLET.MARGIN must be 0 or more"),
    ]


def _aug_checks(cfg: CN) -> list[tuple[bool, str]]:
    """(holds, message if not) for the AUG keys."""
    return [
        (cfg.AUG.MIXUP >= 0 and cfg.AUG.CUTMIX >= 0, "AUG.MIXUP and AUG.CUTMIX alphas must be 0 (off) or more"),
        (0.0 <= cfg.AUG.MIX_PROB <= 1.0, "AUG.MIX_PROB must be in [0, 1]"),
        (0.0 <= cfg.AUG.MIX_SWITCH_PROB <= 1.0, "AUG.MIX_SWITCH_PROB must be in [0, 1]"),
        (0.0 <= cfg.AUG.HFLIP_PROB <= 1.0, "AUG.HFLIP_PROB must be in [0, 1]"),
        (cfg.AUG.CROP_PADDING >= 0, "AUG.CROP_PADDING must be 0 or more"),
        (cfg.AUG.COLOR_JITTER >= 0.0, "AUG.COLOR_JITTER must be 0 or more"),
        *[(0.0 <= cfg.AUG[key] <= 1.0, f"AUG.{key} must be in [0, 1]")
          for key in ("VFLIP_PROB", "PERSPECTIVE_PROB", "GRAYSCALE_PROB", "BLUR_PROB", "ERASE_PROB")],
        (cfg.AUG.RRC_SCALE in ((), (0, 0)) or _is_positive_range(cfg.AUG.RRC_SCALE, 1.0),
         f"AUG.RRC_SCALE must be (min, max) with 0 < min <= max <= 1, or () to disable; got {cfg.AUG.RRC_SCALE}"),
        (0.0 <= cfg.AUG.ROTATION <= 180.0, "AUG.ROTATION must be in [0, 180] degrees"),
        (0.0 <= cfg.AUG.PERSPECTIVE_DISTORTION <= 1.0, "AUG.PERSPECTIVE_DISTORTION must be in [0, 1]"),
        (0.0 <= cfg.AUG.COLOR_JITTER_HUE <= 0.5, "AUG.COLOR_JITTER_HUE must be in [0, 0.5]"),
        (cfg.AUG.BLUR_KERNEL % 2 == 1 and 0 < cfg.AUG.BLUR_KERNEL < 2 * cfg.DATA.IMG_SIZE,
         f"AUG.BLUR_KERNEL must be odd and below 2 * DATA.IMG_SIZE = {2 * cfg.DATA.IMG_SIZE}; "
         f"got {cfg.AUG.BLUR_KERNEL}"),
        (_is_positive_range(cfg.AUG.BLUR_SIGMA, float("inf")),
         f"AUG.BLUR_SIGMA must be (min, max) with 0 < min <= max; got {cfg.AUG.BLUR_SIGMA}"),
        (0 <= cfg.AUG.AUGMIX <= 10, "AUG.AUGMIX must be a severity from 1 to 10, or 0 to disable"),
        (_is_positive_range(cfg.AUG.ERASE_SCALE, 1.0),
         f"AUG.ERASE_SCALE must be (min, max) with 0 < min <= max <= 1; got {cfg.AUG.ERASE_SCALE}"),
        (0 <= cfg.AUG.ERASE_VALUE <= 255, "AUG.ERASE_VALUE must be a uint8 pixel value, 0 to 255"),
    ]


def _check_values(cfg: CN) -> None:
    """Spell every name the way the code knows it (`AlexNet` -> alexnet), then check ranges that
    the types alone cannot express."""
    for full_key, choices in _choices().items():
        node, _, leaf = resolve_key_path(cfg, full_key)
        node[leaf] = resolve_choice(full_key, node[leaf], choices)
    if cfg.MODEL.ACT:  # "" keeps the model's own, so it is not listed among the names
        from models.layers import ACTIVATIONS
        cfg.MODEL.ACT = resolve_choice("MODEL.ACT", cfg.MODEL.ACT, ACTIVATIONS)
    if cfg.AUG.AUTO_AUGMENT:  # "" switches it off, so it is not listed among the names
        from data.transforms import AUTO_AUGMENT_POLICIES
        cfg.AUG.AUTO_AUGMENT = resolve_choice("AUG.AUTO_AUGMENT", cfg.AUG.AUTO_AUGMENT, AUTO_AUGMENT_POLICIES)
    from evaluation.competition_metrics import METRIC_NAMES
    # A name listed twice is scored once.
    cfg.TEST.METRICS = list(dict.fromkeys(resolve_choice("TEST.METRICS", name, METRIC_NAMES)
                                          for name in cfg.TEST.METRICS))
    cfg.TEST.TEMPERATURE = _checked_temperature(cfg.TEST.TEMPERATURE)
    checks = [*_data_model_and_run_checks(cfg), *_train_checks(cfg), *_aug_checks(cfg)]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    _check_loss(cfg)


def _checked_temperature(text: str) -> str:
    """TEST.TEMPERATURE as typed (auto in any case as auto), or UserError unless it is auto or a
    positive number."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise UserError(f"TEST.TEMPERATURE must be a positive number (1 leaves the probabilities as they are) or "
                        f"auto (fitted on val); got {_shown(text)}")
    return text


def _check_loss(cfg: CN) -> None:
    """TRAIN.LOSS's terms, and the settings the metric terms cannot work with."""
    from models.losses import parse_loss_terms
    if not cfg.TRAIN.LOSS.isprintable():  # parse_loss_terms quotes it in its messages as typed
        raise UserError(f"TRAIN.LOSS {cfg.TRAIN.LOSS!r} holds a line break or control character; "
                        f"write its terms joined with +, e.g. ce+arcface")
    terms = [name for name, _ in parse_loss_terms(cfg.TRAIN.LOSS, cfg.TRAIN.LOSS_WEIGHTS)]
    metric_terms = [name for name in terms if name != "ce"]
    if "triplet" in terms and cfg.DATA.SAMPLER != "pk":
        raise UserError("TRAIN.LOSS triplet needs batches holding several images of each class; set DATA.SAMPLER pk "
                        "(and DATA.IMAGES_PER_CLASS, e.g. 4)")
    if metric_terms and (cfg.AUG.MIXUP > 0 or cfg.AUG.CUTMIX > 0):
        raise UserError(f"TRAIN.LOSS {metric_terms[0]} needs each image's own label, which AUG.MIXUP and AUG.CUTMIX "
                        f"blend; set them to 0, or use TRAIN.LOSS ce")
    if metric_terms and cfg.MODEL.AUX_LOGITS:
        raise UserError(f"TRAIN.LOSS {metric_terms[0]} trains the embedding, which MODEL.AUX_LOGITS' auxiliary "
                        f"heads bypass; set MODEL.AUX_LOGITS False")
    device = cfg.DEVICE
    index = device.removeprefix("cuda:")
    if not (device in ("auto", "cpu", "cuda") or (index != device and index.isascii() and index.isdigit())):
        raise UserError(f"DEVICE must be auto, cpu, cuda or cuda:N, got {device!r}")
