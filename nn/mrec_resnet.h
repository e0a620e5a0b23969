/* mrec_resnet.h: torchvision's ResNet (resnet18/34/50/101/152), forward only.
 *
 * Weights: a safetensors file with torchvision's tensor names (conv1,
 * bn1, layer1.0.conv1, ..., layer2.0.downsample.0 / .1, fc). The depth, the
 * block type (Bottleneck when layerN.0.conv3 exists, else BasicBlock) and
 * every width come from the tensors themselves, so one loader reads all five
 * depths. Each BatchNorm (eval mode, eps 1e-5) is folded into the conv
 * before it at load time. Bottlenecks stride on the 3x3 conv (v1.5, as
 * torchvision). To make the file from torchvision:
 *
 *   from safetensors.torch import save_file
 *   m = torchvision.models.resnet50(weights="IMAGENET1K_V1")
 *   save_file({k: v for k, v in m.state_dict().items()
 *              if not k.endswith("num_batches_tracked")}, "model.safetensors")
 *
 * Devices, as for BERT (mrec_bert.h): mrec_resnet_to_device moves the folded
 * weights to a GPU context once (one allocation); images are host memory,
 * copied one at a time; outputs are memory on the context's device.
 */
#ifndef MREC_RESNET_H
#define MREC_RESNET_H

#include "mrec_tensor.h"

typedef struct {
    float *w, *b;            /* (c_out, c_in, k, k) with the BatchNorm folded in, (c_out) */
    int c_out, c_in, k, stride, pad;
} mrec_conv_bn;

typedef struct {
    mrec_conv_bn conv1, conv2, conv3, down; /* conv3: Bottleneck only; down.w NULL if none */
} mrec_resnet_block;

typedef struct {
    int bottleneck;          /* 1: Bottleneck blocks (50/101/152), 0: BasicBlock (18/34) */
    int n_blocks[4];
    int features;            /* channels out of layer4: the avgpool feature size (2048 for resnet50) */
    int n_classes;           /* rows of fc.weight; 0 if the file has no fc */
    mrec_conv_bn stem;
    mrec_resnet_block *block; /* n_blocks[0] + ... + n_blocks[3] */
    float *fc_w, *fc_b;      /* (n_classes, features), (n_classes) */
    float *storage;          /* every w and b above, one allocation (host or device); NULL only while loading */
    int64_t floats;          /* its size */
    mrec_context *on;        /* the GPU context holding them, NULL for host memory */
    int channels_last;       /* the bf16 channels-last route (mrec_resnet_channels_last): every conv weight is
                              * (c_out, k, k, c_in), the stem's c_in padded to 8 with zeros */
} mrec_resnet;

/* Reads path (a .safetensors file; a PyTorch checkpoint, .pt .pth or .bin,
 * holding a state dict or a whole torchvision ResNet, read by the restricted
 * unpickler of mrec_pytorch.h; or a folder holding model.safetensors).
 * A missing tensor or a shape that does not chain is an error naming the
 * file and the tensor. */
mrec_status mrec_resnet_load(mrec_resnet *m, const char *path);
/* On a GPU context in bf16, the weights are first laid out for the
 * channels-last route (below) where every width allows it. */
mrec_status mrec_resnet_to_device(mrec_resnet *m, mrec_context *ctx);
/* The bf16 channels-last route, what a GPU runs in bf16: activations
 * (N, H, W, C) in bf16 between layers (the mrec_conv2d_nhwc_bf16 ops), the
 * layout and type cuDNN's tensor-core kernels read directly, each
 * convolution with its bias, residual and ReLU one call. Rewrites the host
 * weights for it, before mrec_resnet_to_device; a forward then takes that
 * route on any context (on the CPU through the ops' references: how the
 * tests check the route without a GPU). MREC_ERR_UNSUPPORTED where a width
 * is not a multiple of 8 (the tensor cores' smallest; the stem's 3 input
 * channels excepted, which are padded). */
mrec_status mrec_resnet_channels_last(mrec_resnet *m);
void mrec_resnet_free(mrec_resnet *m);

/* Workspace bytes for one forward pass on (h, w) images: a pass is one
 * image on the CPU, so the batch does not change it; on a GPU (after
 * mrec_resnet_to_device) a pass is up to 32 images, 128 on the bf16
 * channels-last route (about 1 GB for resnet50 at 224 x 224), and the
 * convolutions' workspace is what cuDNN asks for, queried through the
 * model's context. */
size_t mrec_resnet_workspace_bytes(const mrec_resnet *m, int h, int w);
/* Workspace bytes that let a forward of B images on ctx run a pass per
 * thread of a CPU pool side by side (mrec_context_split): the threads'
 * passes, or one pass where it would not split. */
size_t mrec_resnet_batch_workspace_bytes(const mrec_context *ctx, const mrec_resnet *m, int B, int h, int w);

/* images (B, 3, h, w), normalized, host memory; pooled (B, features) =
 * avgpool output (flattened), logits (B, n_classes) = fc; either may be
 * NULL; both on the context's device. */
mrec_status mrec_resnet_forward(mrec_context *ctx, const mrec_resnet *m, const float *images, int B, int h, int w,
                                float *pooled, float *logits);

#endif
