"""Generator families: which generator names share an architecture lineage (and so, most likely, a decoder).

Training balances its generated images by family and the leave-family-out protocol holds whole families out, so two
generators that share a decoder (SDXL and an SDXL fine-tune) must never sit on both sides of a split. Names not
listed here are their own family. The grouping is a judgement from what each source says about its model; where it
is uncertain the comment says so.
"""

from __future__ import annotations

from collections.abc import Iterable

FAMILY_OF: dict[str, str] = {
    # Stable Diffusion 1.x: the kl-f8 VAE and the SD1 UNet (gen-train, SD 1.5 and a rectified-flow SD 1.5 distillate)
    "sd1": "sd1",
    "sd15": "sd1",
    "perflow_sd15": "sd1",
    # UniDiffuser (U-ViT) generates in Stable Diffusion's kl-f8 latent space and decodes with its VAE
    "unidiffuser": "sd1",
    # SDXL and its fine-tunes / distillates (Animagine XL is an SDXL fine-tune; TCD-SDXL a distillate)
    "sdxl": "sdxl",
    "sdxl-turbo": "sdxl",
    "sdxl_distilled": "sdxl",
    "anime": "sdxl",
    # Playground v2.5 keeps SDXL's architecture and latent space (PrometheusV1 is a fine-tune of it)
    "playground25": "sdxl",
    "playground25_prometheus": "sdxl",
    # FLUX lineage (FLUX.1 dev/schnell, FLUX.2); Krea 2 grouped here as a FLUX-derived model (uncertain)
    "flux": "flux",
    "flux1": "flux",
    "flux2": "flux",
    "krea2": "flux",
    # VQGAN decoder + autoregressive transformer (minDALL-E reuses taming-transformers' VQGAN)
    "mindalle": "vqgan_ar",
    "taming_vqgan": "vqgan_ar",
    # VQGAN+CLIP optimises taming-transformers' VQGAN latents: the same decoder
    "vqgan_clip": "vqgan_ar",
    # 1D tokenizers of one lab: TiTok, and MaskGen on its text-aware successor (TA-TiTok)
    "titok": "titok",
    "maskgen": "titok",
    # RAR: an autoregressive transformer over MaskGIT's VQGAN tokens
    "rar": "rar",
    # Image-to-image GANs: CUT and FastCUT reuse CycleGAN's ResNet generator; SPADE grew out of pix2pixHD
    "cyclegan": "cyclegan",
    "cut": "cyclegan",
    "spade": "spade",
    "pix2pixhd": "spade",
    "stylegan_xl": "stylegan",
    "imagen3": "imagen",
    "imagen4": "imagen",
    "cogview": "cogview",
    "tarflow": "tarflow",
    "edm": "edm",
    # sources/more-generators-2.csv. JanusFlow generates in SDXL's VAE latent space, BAGEL decodes with FLUX's VAE
    "janusflow": "sdxl",
    "bagel": "flux",
    # HART and Switti are scale-wise autoregressive models that descend from VAR (as Infinity does)
    "hart": "var",
    "switti": "var",
    # TencentARC's tokenizers: Open-MAGVIT2 and IBQ (a separate tokenizer of the same lab; grouped, uncertain)
    "open_magvit2": "open_magvit2",
    "ibq": "open_magvit2",
    # Show-o (its own MAGVIT-v2 tokenizer) and Show-o2 (Wan 2.1's VAE): one lab's unified models
    "show_o": "show_o",
    "show_o2": "show_o",
    "rcg_mage": "mage",
    "halton_maskgit": "maskgit",
    "rq_transformer": "rqvae",
    "ncsnpp": "score_sde",
    "liquid": "liquid",
    "unipic1": "unipic",
    # sources/more-generators-3.csv. U-ViT and ZigMa generate in Stable Diffusion's kl-f8 latent space (its VAE);
    # OFA's text-to-image decodes taming-transformers' VQGAN codes
    "uvit": "sd1",
    "zigma": "sd1",
    "ofa": "vqgan_ar",
    # text-to-image GANs: GALIP builds on DF-GAN (one author); StackGAN-v2 on its own
    "galip": "dfgan",
    "df_gan": "dfgan",
    "stackgan": "stackgan",
    "ddpm": "ddpm",
    # single-name families, spelled out so the table reads as the complete list
    "nanobanana": "gemini",
    "gpt4o": "gpt4o",
    "midjourney": "midjourney",
    "seedream": "seedream",
    "ideogram4": "ideogram",
    "infinity": "infinity",
    "karlo_unclip": "unclip",
    "stylegan2": "stylegan",
    "gigagan": "gigagan",
    "lightweight_gan": "fastgan",
    "biggan": "biggan",
    "sd3": "sd3",
    "sana": "sana",
    "stablecascade": "stablecascade",
    # bench-dev's generators
    "sd2": "sd2",
    "ldm": "ldm",
    "dit": "dit",
    "deepfloyd-if": "deepfloyd",
    "kandinsky3": "kandinsky",
}


#: Leave-family-out folds: every family held out exactly once. Each fold mixes kinds (diffusion, GAN,
#: autoregressive, closed commercial) and sizes, so no fold removes a whole kind of generator and every training
#: set still holds ~80 % of the images. Shared by the detector's leave-family-out benchmark and the family head's
#: open-set calibration.
LEAVE_OUT_FOLDS: list[list[str]] = [
    ["sd1", "gpt4o", "fastgan", "sana", "score_sde", "ddpm"],  # the pixel-space diffusion models together
    ["sdxl", "midjourney", "biggan", "ideogram", "rqvae", "stackgan"],
    ["flux", "gemini", "stylegan", "liquid", "dfgan"],
    ["vqgan_ar", "unclip", "sd3", "seedream", "unipic"],
    ["gigagan", "infinity", "stablecascade", "var"],  # VAR's descendants beside Infinity, in case they share more
    # sources/more-generators.csv; the last names of each fold: more-generators-2.csv and -3.csv
    ["titok", "spade", "imagen", "cogview", "open_magvit2", "show_o"],  # the two MAGVIT-v2 lineages together
    ["rar", "cyclegan", "tarflow", "edm", "maskgit", "mage"],  # MaskGIT-style VQ tokens with RAR's, in case
]


def family_of(generator: str) -> str:
    """The family of a generator name (the name itself when it is not in :data:`FAMILY_OF`)."""
    return FAMILY_OF.get(generator, generator)


def families_of(generators: Iterable[str]) -> set[str]:
    return {family_of(g) for g in generators}
