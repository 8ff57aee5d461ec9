# MMSelfSup 1.0.0: SimCLR + ContrastiveCrop, ResNet-18 on CIFAR-10 with the paper's settings:
# 500 epochs, batch 512, Beta alpha 0.1, threshold k 0.1, warm-up and interval 100, RRC scale (0.2, 1.0).
# The optimizer (SGD 0.5, cosine) is a common CIFAR SimCLR recipe, not the paper's table.
# Reported (SimCLR linear top-1 on CIFAR-10, RandomResizedCrop -> ContrastiveCrop): 89.63 -> 90.08, as quoted
# by a third party and not checked against the paper; the paper's abstract: +0.4 to +2.0 points across methods.
# Importing ccrop_mm also inserts the empty `mmselfsup.engine.runner` module that mmselfsup 1.0.0
# lacks (open-mmlab/mmselfsup#745); without it runner.train() fails.
_base_ = ['mmselfsup::selfsup/simclr/simclr_resnet50_8xb32-coslr-200e_in1k.py']

custom_imports = dict(imports=['ccrop_mm'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(
        mean=(125.307, 122.961, 113.8575), std=(51.5865, 50.847, 51.255), bgr_to_rgb=False),
    backbone=dict(
        _delete_=True, type='mmcls.ResNet_CIFAR', depth=18, norm_cfg=dict(type='BN'), out_indices=[3]),
    neck=dict(in_channels=512, hid_channels=512, out_channels=128),
    head=dict(temperature=0.2))

# ContrastiveCrop takes mmselfsup's RandomResizedCrop arguments here (size, scale, ratio) + alpha.
view_pipeline = [
    dict(type='ContrastiveCrop', size=32, scale=(0.2, 1.0), alpha=0.1, backend='pillow'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomApply',
         transforms=[dict(type='ColorJitter', brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1)],
         prob=0.8),
    dict(type='RandomGrayscale', prob=0.2, keep_channels=True, channel_weights=(0.114, 0.587, 0.2989)),
]
train_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    # meta_keys=['sample_idx'] fails in mmselfsup 1.0.0 ("should be a InstanceData"); algorithm_keys works.
    dict(type='PackSelfSupInputs', algorithm_keys=['sample_idx'], meta_keys=[]),
]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    drop_last=True,
    persistent_workers=True,
    collate_fn=dict(_delete_=True, type='default_collate'),  # drop the inherited `_scope_` key
    dataset=dict(
        _delete_=True,
        type='mmcls.CIFAR10',
        data_root='data/cifar10',
        test_mode=False,
        download=False,
        pipeline=train_pipeline))

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.5, momentum=0.9, weight_decay=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', T_max=500, by_epoch=True, begin=0, end=500)]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=500)

custom_hooks = [
    dict(type='ContrastiveCropHook', warmup_epochs=100, interval=100, threshold=0.1, localizer='bbox'),
]
