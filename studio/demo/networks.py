"""The networks of the bundled default model, at the sizes it ships with, and the attribute
read-out heads used only while training it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from studio.demo.scenes import ATTRIBUTES

SIDE = 64  # pixels; the model's native size
LATENT_SIDE = 16
TEXT_WIDTH = 64
END_OF_TEXT = 49407  # the CLIP tokenizer's end-of-text token, which also pads prompts


def make_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=SIDE,
    )


def make_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=49408,
        hidden_size=TEXT_WIDTH,
        intermediate_size=TEXT_WIDTH * 4,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=77,
        hidden_act="quick_gelu",  # OpenAI CLIP's activation: the folder is detected as SD 1.x
        projection_dim=TEXT_WIDTH,
        bos_token_id=49406,
        eos_token_id=END_OF_TEXT,
        pad_token_id=END_OF_TEXT,
    )
    return CLIPTextModel(config)


def make_unet():
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=LATENT_SIDE,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 96),
        layers_per_block=1,
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def make_upscaler():
    from spandrel.architectures.Compact import Compact

    return Compact(num_in_ch=3, num_out_ch=3, num_feat=32, num_conv=8, upscale=4)


class AttributeHeads(torch.nn.Module):
    """Training only: linear read-outs of every scene attribute from the encoded prompt.

    Trained by the diffusion loss alone, the text encoder learned what helps the UNet first
    (colours, which are global) and left shape kind and position out of its output: prompts
    that differ only there encoded almost the same, so the UNet could never follow them.
    Asking these heads to read every attribute back keeps it all in the text features. They
    read the tokens from the end-of-text token on, the ones a UNet mostly attends to."""

    def __init__(self) -> None:
        super().__init__()
        self.heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(TEXT_WIDTH, len(values)) for name, values in ATTRIBUTES.items()}
        )

    def forward(self, hidden: torch.Tensor, ids: torch.Tensor, labels: list[dict]) -> torch.Tensor:
        end = (ids == END_OF_TEXT).int().argmax(dim=1, keepdim=True)  # the first end-of-text token
        tail = (torch.arange(ids.shape[1], device=ids.device)[None] >= end).unsqueeze(-1)
        summary = (hidden * tail).sum(1) / tail.sum(1)
        loss = hidden.new_zeros(())
        for name, head in self.heads.items():
            target = torch.tensor([-100 if x[name] is None else x[name] for x in labels])
            if (target >= 0).any():  # (the mean over no named rows would be NaN)
                target = target.to(hidden.device)
                loss = loss + F.cross_entropy(head(summary), target, ignore_index=-100)
        return loss
