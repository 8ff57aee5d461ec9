# SimCLR + ContrastiveCrop, ResNet-18 on CIFAR-10 with the paper's settings (Peng et al., CVPR 2022):
# 500 epochs, batch 512, Beta alpha 0.1, threshold k 0.1, warm-up and refresh interval 100 epochs,
# RRC scale (0.2, 1.0). The optimizer (SGD 0.5, cosine) is a common CIFAR SimCLR recipe, not the paper's table.
# Reported (SimCLR linear top-1 on CIFAR-10, RandomResizedCrop -> ContrastiveCrop): 89.63 -> 90.08, as quoted
# by a third party and not checked against the paper; the paper's abstract: +0.4 to +2.0 points across methods.
_base_ = ['mmpretrain::simclr/simclr_resnet50_16xb256-coslr-200e_in1k.py']

# ContrastiveCrop edit 1 of 3: load the plugin (registers ContrastiveCrop and ContrastiveCropHook).
custom_imports = dict(imports=['ccrop_mm'], allow_failed_imports=False)

data_preprocessor = dict(
    type='SelfSupDataPreprocessor',
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
    to_rgb=False)  # mmpretrain's CIFAR10 yields RGB arrays already

model = dict(
    data_preprocessor=data_preprocessor,
    backbone=dict(type='ResNet_CIFAR', depth=18, norm_cfg=dict(type='BN'), zero_init_residual=False),
    neck=dict(in_channels=512, hid_channels=512, out_channels=128),
    head=dict(temperature=0.2))

# ContrastiveCrop edit 2 of 3: ContrastiveCrop replaces RandomResizedCrop (mmpretrain's arguments + alpha).
view_pipeline = [
    dict(type='ContrastiveCrop', scale=32, crop_ratio_range=(0.2, 1.0), alpha=0.1, backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
]
train_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),  # keeps sample_idx in the metainfo by default
]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    drop_last=True,
    persistent_workers=True,
    # Replace (not merge) the inherited collate_fn: a merged one keeps a `_scope_` key that
    # mmengine passes on to default_collate (TypeError in the workers).
    collate_fn=dict(_delete_=True, type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='CIFAR10',
        data_root='data/cifar10',
        split='train',
        download=False,  # no network: put the python CIFAR-10 batches under data_root yourself
        pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=500, by_epoch=True, begin=0, end=500)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=500)

# ContrastiveCrop edit 3 of 3: the hook that localizes the boxes (paper: bbox, k = 0.1, every 100 epochs).
custom_hooks = [
    dict(type='ContrastiveCropHook', warmup_epochs=100, interval=100, threshold=0.1, localizer='bbox'),
]
