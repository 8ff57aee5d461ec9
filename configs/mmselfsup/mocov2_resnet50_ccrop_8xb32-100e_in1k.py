# MMSelfSup 1.0.0: MoCo v2 + ContrastiveCrop, ResNet-50 on ImageNet-1k with the paper's settings:
# Beta alpha 0.6, threshold k 0.1, warm-up and refresh interval 20, 100 epochs, RRC scale (0.2, 1.0).
# Reported: the paper gives better detection/segmentation transfer after ImageNet-1k pre-training; this
# project holds no checked linear top-1 figure for this setting (see docs/mmpretrain.md).
_base_ = ['mmselfsup::selfsup/mocov2/mocov2_resnet50_8xb32-coslr-200e_in1k.py']

custom_imports = dict(imports=['ccrop_mm'], allow_failed_imports=False)

view_pipeline = [
    dict(type='ContrastiveCrop', size=224, scale=(0.2, 1.0), alpha=0.6, backend='pillow'),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
    dict(type='RandomGaussianBlur', sigma_min=0.1, sigma_max=2.0, prob=0.5),
    dict(type='RandomFlip', prob=0.5),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackSelfSupInputs', algorithm_keys=['sample_idx'], meta_keys=['img_path']),
]
train_dataloader = dict(
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(pipeline=train_pipeline))

param_scheduler = [dict(type='CosineAnnealingLR', T_max=100, by_epoch=True, begin=0, end=100)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=100)

custom_hooks = [
    dict(type='ContrastiveCropHook', warmup_epochs=20, interval=20, threshold=0.1, localizer='bbox',
         batch_size=256),
]
