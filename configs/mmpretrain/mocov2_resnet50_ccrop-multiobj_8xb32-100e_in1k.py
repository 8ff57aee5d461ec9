# Multi-object variant of the MoCo v2 config: box sets (connected components), one shared box per pair.
# No paper figure: box sets are this project's extension (the paper keeps one box per image).
_base_ = ['./mocov2_resnet50_ccrop_8xb32-100e_in1k.py']

view_pipeline = [
    dict(type='ContrastiveCrop', scale=224, crop_ratio_range=(0.2, 1.0), alpha=0.6, backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='GaussianBlur', magnitude_range=(0.1, 2.0), magnitude_std='inf', prob=0.5),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ChooseContrastiveBox'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

custom_hooks = [
    dict(type='ContrastiveCropHook', warmup_epochs=20, interval=20, threshold=0.1,
         localizer='components', max_boxes=4, batch_size=256),
]
