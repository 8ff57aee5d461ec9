# Multi-object variant: a set of boxes per image (connected components of the heatmap); both
# views of a pair crop around the same box, chosen before MultiView by ChooseContrastiveBox.
# No paper figure: box sets are this project's extension (the paper keeps one box per image).
_base_ = ['./simclr_resnet18_ccrop_1xb512-500e_cifar10.py']

view_pipeline = [
    dict(type='ContrastiveCrop', scale=32, crop_ratio_range=(0.2, 1.0), alpha=0.1, backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
]
train_pipeline = [
    dict(type='ChooseContrastiveBox'),  # one box per sample, shared by both views
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(type='ContrastiveCropHook', warmup_epochs=100, interval=100, threshold=0.1,
         localizer='components', max_boxes=4),
]
