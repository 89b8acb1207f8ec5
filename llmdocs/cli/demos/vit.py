"""Tour demo of the Vision Transformer chapter: the shipped ViT and ResNet classify Fashion-MNIST test images.

`vit-fashion-mnist` reads a 28 x 28 image as 49 patches of 4 x 4 pixels with a small Transformer encoder;
`resnet-fashion-mnist` is the convolutional baseline trained on the same images with the same recipe. Both classify
the first test images, and attention rollout (Abnar and Zuidema, 2020) shows which patches the ViT's [CLS] token
gathered its answer from. Without the Fashion-MNIST package, the demo says how to install it and draws what the
ViT learned without any image: the cosine similarity of its position embeddings.
"""

from __future__ import annotations

from pathlib import Path

from llmdocs.cli.registry import register, save_demo_figure

__all__ = ["vit_demo"]

MODELS = ("vit-fashion-mnist", "resnet-fashion-mnist")


@register(
    name="vit",
    title="Vision Transformer: images as sequences",
    page="chapters/vit.md",
    description=(
        "Classify Fashion-MNIST test images with the shipped Vision Transformer and its ResNet baseline, and draw "
        "where the ViT's [CLS] token looked (attention rollout over its 7 x 7 patches)."
    ),
)
def vit_demo(out_dir: Path, fast: bool) -> list[Path]:
    """True vs predicted classes of the first test images for both models, and the ViT's rollout maps.

    Args:
        out_dir: Folder for the figure.
        fast: 6 test images instead of 12.

    Returns:
        The SVG figure: the images, titled with the true and the ViT's class, under the ViT's rollout maps (or,
        without Fashion-MNIST, the similarity of the ViT's position embeddings).
    """
    from llmdocs.data.assets import MissingDataPackageError
    from llmdocs.data.images import load_fashion_mnist
    from llmdocs.models.vit import ViT, rollout_map
    from llmdocs.pretrained import classify_images, image_inputs, load_image_classifier
    from llmdocs.viz import plot_image_grid, plot_position_similarity

    loaded = {name: load_image_classifier(name) for name in MODELS}
    for name, (model, meta) in loaded.items():
        results = meta.get("results", {})
        accuracy = results.get("test_accuracy")
        score = f", test accuracy {accuracy:.2%} on {results.get('test_images', 10_000):,} images" if accuracy else ""
        n_params = sum(p.numel() for p in model.parameters())
        print(f"model: {name}, a {type(model).__name__} of {n_params:,} parameters{score}")
    vit, vit_meta = loaded["vit-fashion-mnist"]
    assert isinstance(vit, ViT)

    try:
        test = load_fashion_mnist("test")
    except MissingDataPackageError:
        print(
            "\nFashion-MNIST is not installed, so there are no images to classify. Install it with\n"
            "    sudo apt-get install dataset-fashion-mnist\n"
            "(or `make system`, which installs every system package of the course), then run this demo again.\n"
            "Meanwhile, what the ViT learned without any image: how alike its position embeddings are."
        )
        grid = vit.config.grid_size
        fig = plot_position_similarity(vit.embeddings.pos_embed, grid, title="vit-fashion-mnist: position embeddings")
        return [save_demo_figure(fig, out_dir, "vit-positions")]

    n = 6 if fast else 12
    images, labels = test.images[:n], test.labels[:n]  # (n, 1, 28, 28) uint8, (n,)
    names = vit_meta["class_names"]
    predicted = {name: classify_images(model, images, meta)[0] for name, (model, meta) in loaded.items()}
    print(f"\nthe first {n} Fashion-MNIST test images (x = wrong):")
    print(f"  {'#':>2}  {'true class':12} {'ViT':14} {'ResNet':14}")
    for i, label in enumerate(labels.tolist()):
        cells = []
        for name in MODELS:
            guess = int(predicted[name][i])
            cells.append(f"{names[guess]:12}{'  ' if guess == label else ' x'}")
        print(f"  {i:>2}  {names[label]:12} {cells[0]} {cells[1]}")
    for name in MODELS:
        right = int((predicted[name] == labels).sum())
        print(f"  {name}: {right} of {n} right")

    maps = rollout_map(vit, image_inputs(images, vit_meta))  # (n, 28, 28)
    vit_ids = predicted["vit-fashion-mnist"].tolist()
    titles = [f"{names[t]}\nViT: {names[p]}" for t, p in zip(labels.tolist(), vit_ids, strict=True)]
    colors = ["C2" if t == p else "C3" for t, p in zip(labels.tolist(), vit_ids, strict=True)]
    fig = plot_image_grid(
        images, titles, overlays=maps, title_colors=colors, ncols=6, title="where the ViT's [CLS] token looked"
    )
    print("  (the figure: true class and the ViT's answer over its attention rollout: bright patches fed [CLS])")
    return [save_demo_figure(fig, out_dir, "vit-rollout")]
