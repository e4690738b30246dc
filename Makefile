# One entry point per job; the README's quick start calls `make demo` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WEB_STAMP := .venv-web/.installed

.PHONY: install install-web web demo test test-fast bench bench-qsm bench-ivim bench-spio bench-rim train-qsm train-qsmgan train-ivim train-spio train-spio-refiner train-spio-noise-robust train-spio-scratch train-spio-base train-spio-060 train-rim lint clean

install: $(STAMP) $(WEB_STAMP)

$(STAMP): pyproject.toml tools/install.sh
	bash tools/install.sh

# The web app (issue 27): its own .venv-web (trame-slicer pins an older slicer-core than .venv's test layer),
# Playwright in .venv and Debian's chromium for tests/web. `make web WEB_ARGS="--host 0.0.0.0 --port 9000"`.
$(WEB_STAMP): tools/install_web.sh | $(STAMP)
	bash tools/install_web.sh

install-web: $(WEB_STAMP)

web: $(STAMP) $(WEB_STAMP)
	.venv-web/bin/python QSMSlicerExtension/web/serve.py $(WEB_ARGS)

demo: $(STAMP)
	$(PY) -m lightning_modules.qsm.demo --output_dir demo_output

test: $(STAMP) $(WEB_STAMP)
	$(PY) -m pytest -q tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow" tests

bench: bench-qsm bench-ivim bench-spio bench-rim

bench-qsm: $(STAMP)
	$(PY) benchmarks/qsm_invivo.py
	$(PY) benchmarks/qsm_tv_weight.py
	$(PY) benchmarks/qsm_solvers.py
	$(PY) benchmarks/qsm_classical.py --iterations 200
	$(PY) benchmarks/qsm_accuracy.py

bench-ivim: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) benchmarks/ivim_mixed_snr.py
	OMP_NUM_THREADS=1 $(PY) benchmarks/ivim_mixed_snr.py --model triexp
	OMP_NUM_THREADS=1 $(PY) benchmarks/ivim_accuracy.py --snr 20 --n_dipy 500 --output_dir benchmarks/results/ivim/snr_aware_snr20

bench-spio: $(STAMP)
	$(PY) benchmarks/spio_accuracy.py

bench-rim: $(STAMP)
	$(PY) benchmarks/rim_accuracy.py
	$(PY) benchmarks/rim_real_shapes.py

# Reproduce the shipped learned-NDI weights (CPU, four stages, ≈ 2.3 h); scale out with e.g.
# $(PY) -m monai.bundle run --config_file monai_bundles/qsm_dipole_inversion/configs/train.json --trainer#devices 4 --trainer#strategy ddp
# QSM learned NDI (bundle 0.6.0): stage 1 is the 0.4.0 network (no odd/zero-mean CNN, no final data iterations)
# from scratch; stage 2 adds the odd CNN, 8 final data iterations and shape phantoms; stage 3 (the shipped
# architecture, train.json's network_def) adds the zero-mean CNN update; stage 4 (0.6.0) adds dense source
# phantoms to the training mix. Wall times in the bundle's docs/README.md.
QSM       := monai_bundles/qsm_dipole_inversion
QSM_WORK  ?= $(HOME)/.cache/qsm_slicer_extension/qsm
QSM_TRAIN := OMP_NUM_THREADS=1 $(PY) -m monai.bundle run --config_file $(QSM)/configs/train.json
QSM_NDI   := \$$lightning_modules.qsm.learned_ndi.LearnedNdi(iterations=32, channels=8, cnn_iterations=2, weighting='mask'
train-qsm: $(STAMP)
	mkdir -p $(QSM_WORK)
	$(QSM_TRAIN) --model_path $(QSM_WORK)/stage1.pt --network_def "$(QSM_NDI))" --phantom_fraction 0.0
	$(QSM_TRAIN) --model_path $(QSM_WORK)/stage2.pt --network_def "$(QSM_NDI), odd_cnn=True, final_data_iterations=8)" \
	    --init_weights $(QSM_WORK)/stage1.pt --learning_rate 0.001 --phantom_fraction 0.3 --trainer#max_epochs 11
	$(QSM_TRAIN) --model_path $(QSM_WORK)/stage3.pt --init_weights $(QSM_WORK)/stage2.pt --learning_rate 0.001 \
	    --phantom_fraction 0.3 --trainer#max_time 00:00:35:00
	$(QSM_TRAIN) --model_path $(QSM_WORK)/stage4.pt --init_weights $(QSM_WORK)/stage3.pt --learning_rate 0.001 \
	    --phantom_fraction 0.2 --sources_fraction 0.2 --trainer#max_time 00:00:45:00
	cp $(QSM_WORK)/stage4.pt $(QSM)/models/model.pt

# QSMGAN (bundle 0.7.0): the U-Net corrects the TV estimate and learns from the in-vivo slabs with COSMOS targets
# (../shared/data/qsm_invivo/qsmnet_slabs; L1 only, 20 epochs of 25 batches of two 48³ patches, no selection).
# One model per held-out slab gives the cross-validated numbers of benchmarks/qsm_invivo.py; the shipped
# models/qsmgan.pt learns from both slabs. About 30 min each on one CPU thread (the three can run side by side).
QSMGAN_TRAIN := OMP_NUM_THREADS=1 $(PY) -m monai.bundle run --config_file $(QSM)/configs/train_qsmgan.json
train-qsmgan: $(STAMP)
	mkdir -p $(QSM_WORK)
	$(QSMGAN_TRAIN) --model_path $(QSM)/models/qsmgan_without_s2o4.pt --train_subjects "['s1o1']"
	$(QSMGAN_TRAIN) --model_path $(QSM)/models/qsmgan_without_s1o1.pt --train_subjects "['s2o4']"
	$(QSMGAN_TRAIN) --model_path $(QSM)/models/qsmgan.pt

# The other bundles' training recipes (options and wall times in each bundle's docs/README.md)
train-ivim: $(STAMP)
	$(PY) -m monai.bundle run --config_file monai_bundles/ivim_mapping/configs/train.json

# SPIO 0.6.0 (the weights shipped until session 24; ≈ 11.6 h on one core): stages 1-6 train the 0.2 network (12-24-48 channels) from scratch and then restart the one-cycle schedule
# from the previous stage's best weights; stage 7 (0.3.0) widens it to the shipped network (train.json's
# network_def, Net2WiderNet: lightning_modules/spio/widen.py) and trains on a pool twice as large; stage 8 (0.3.1)
# restarts it at half the peak learning rate on a pool twice as large again; stages 9 and 10 restart it at peak
# 3e-4 and 2e-4 on 21 000 samples (0.3.3). Stage 11 (0.6.0, issue 24 session 19) fine-tunes stage 10 on fresh
# samples, half with a real head's anatomy (scalp, skull, vessels, texture) and half intensity-augmented, and the
# shipped weights are 0.75 x stage 10 + 0.25 x stage 11 (weight interpolation, WiSE-FT).
SPIO       := monai_bundles/spio_quantification
SPIO_WORK  ?= $(HOME)/.cache/qsm_slicer_extension/spio
SPIO_TRAIN := $(PY) -m monai.bundle run --config_file $(SPIO)/configs/train.json
SPIO_0_2   := --network_def "\$$lightning_modules.spio.networks.DeepSpio(encoder_widths=(12, 24, 48), \
  bottleneck_channels=48, decoder_widths=(24,))"
SPIO_AGAIN := --l2_warmup_epochs 0 --learning_rate 0.001
train-spio-060: $(STAMP)
	mkdir -p $(SPIO_WORK)
	$(SPIO_TRAIN) $(SPIO_0_2) --model_path $(SPIO_WORK)/stage1.pt
	$(SPIO_TRAIN) $(SPIO_0_2) --model_path $(SPIO_WORK)/stage2.pt --init_weights $(SPIO_WORK)/stage1.pt \
	  $(SPIO_AGAIN) --trainer#max_epochs 12
	$(SPIO_TRAIN) $(SPIO_0_2) --model_path $(SPIO_WORK)/stage3.pt --init_weights $(SPIO_WORK)/stage2.pt \
	  $(SPIO_AGAIN) --trainer#max_epochs 10
	$(SPIO_TRAIN) $(SPIO_0_2) --model_path $(SPIO_WORK)/stage4.pt --init_weights $(SPIO_WORK)/stage3.pt \
	  $(SPIO_AGAIN) --trainer#max_epochs 10
	$(SPIO_TRAIN) $(SPIO_0_2) --model_path $(SPIO_WORK)/stage5.pt --init_weights $(SPIO_WORK)/stage4.pt \
	  $(SPIO_AGAIN) --trainer#max_epochs 12
	$(SPIO_TRAIN) $(SPIO_0_2) --model_path $(SPIO_WORK)/stage6.pt --init_weights $(SPIO_WORK)/stage5.pt \
	  $(SPIO_AGAIN) --trainer#max_epochs 12
	$(SPIO_TRAIN) --model_path $(SPIO_WORK)/stage7.pt --init_weights $(SPIO_WORK)/stage6.pt \
	  $(SPIO_AGAIN) --pool_size 7000 --trainer#max_epochs 13
	$(SPIO_TRAIN) --model_path $(SPIO_WORK)/stage8.pt --init_weights $(SPIO_WORK)/stage7.pt \
	  --l2_warmup_epochs 0 --learning_rate 0.0005 --pool_size 14000 --trainer#max_epochs 6
	$(SPIO_TRAIN) --model_path $(SPIO_WORK)/stage9.pt --init_weights $(SPIO_WORK)/stage8.pt \
	  --l2_warmup_epochs 0 --learning_rate 0.0003 --pool_size 21000 --trainer#max_epochs 5 \
	  --trainer#limit_train_batches 1100
	$(SPIO_TRAIN) --model_path $(SPIO_WORK)/stage10.pt --init_weights $(SPIO_WORK)/stage9.pt \
	  --l2_warmup_epochs 0 --learning_rate 0.0002 --pool_size 21000 --trainer#max_epochs 5 \
	  --trainer#limit_train_batches 1100
	OMP_NUM_THREADS=1 $(SPIO_TRAIN) --model_path $(SPIO_WORK)/stage11.pt --init_weights $(SPIO_WORK)/stage10.pt \
	  --seed 27 --pool_size 0 --samples_per_epoch 4000 --head_bases 0.5 --base_augmentation 0.5 \
	  --l2_warmup_epochs 0 --learning_rate 0.0002 --trainer#max_epochs 14
	$(PY) benchmarks/spio_weight_interpolation.py --base $(SPIO_WORK)/stage10.pt --tuned $(SPIO_WORK)/stage11.pt \
	  --save_alpha 0.25 --save_to $(SPIO)/models/model.pt

# SPIO from scratch on two CPU cores (issue 24, sessions 21-24). Every stage on fresh samples with a loader worker
# simulating on the other core, the dense auxiliary targets (training only), bf16-mixed and channels-last; each
# stage keeps its best epoch by its own validation NMAE. F and F2 ran in float32 on one core each (session 21);
# G, G2 (sessions 22), G3 (23), G3n and G4n (24) ran as written here; session 25 re-ran F, F2 and G4n as written
# (same accuracy: benchmarks/results/spio/decision_rule_session25.md).
# train-spio (the shipped 0.8.0, 27 000 steps ≈ 2 h 47 min on session 25's operators: F, F2 and the last stage
#   measured, 24.7 + 12.7 + 25.2 min, the rest at 0.366 s per step; session 28 re-ran the last stage and got the
#   shipped weights tensor for tensor): F → F2 → G → G2 → G3n → G4h
#   (one training sample in four noise-free in the last two; one in eight of the last stage's base images with a
#   bright thin rim, --rim_bases 0.125, session 27/28; 0.7.0's G4n was the same stage without it), copied to the
#   bundle's models/model.pt.
# train-spio-scratch (23 000 steps ≈ 2 h 21 min; NOT shipped: tuning 0.395 vs 0.393): F → F2 → G → G2 → G3.
SPIO_FAST  := OMP_NUM_THREADS=1 $(SPIO_TRAIN) --pool_size 0 --num_workers 1 --auxiliary_weight 1 \
  --trainer\#precision bf16-mixed --channels_last true
SPIO_FAST2 := OMP_NUM_THREADS=1 $(SPIO_TRAIN) --pool_size 0 --num_workers 2 --auxiliary_weight 1 \
  --trainer\#precision bf16-mixed --channels_last true
SPIO_HEADS := --head_bases 0.5 --base_augmentation 0.5 --l2_warmup_epochs 0
SPIO_LAST  := --samples_per_epoch 16000 --learning_rate 0.0003 --trainer\#max_epochs 4 $(SPIO_HEADS)
SCRATCH    := $(SPIO_WORK)/scratch

train-spio: train-spio-base
	$(SPIO_FAST) --seed 66 $(SPIO_LAST) --noise_free_fraction 0.25 --init_weights $(SCRATCH)/G2.pt \
	  --work_dir $(SCRATCH)/G3n --model_path $(SCRATCH)/G3n.pt
	$(SPIO_FAST2) --seed 68 $(SPIO_LAST) --noise_free_fraction 0.25 --rim_bases 0.125 \
	  --init_weights $(SCRATCH)/G3n.pt --work_dir $(SCRATCH)/G4h --model_path $(SCRATCH)/G4h.pt
	cp $(SCRATCH)/G4h.pt $(SPIO)/models/model.pt
	$(MAKE) --no-print-directory train-spio-refiner

# SPIO 0.9.0 (issue 24, session 30): the simulate-and-compare refiner on the shipped DeepSPIO map. A pool of
# 3 500 samples of the last stage's generator (seed 300, two processes of 1 750) with the bundle's maps and their
# simulated lifts, 200 validation samples (seed 301), then 1 000 Lightning steps on two threads (≈ 10 min in all).
# 0.10.0 (session 31): the pool's generator has rim bases and five shape families in half its samples each;
# 0.10.1: batch 4 for 4 000 steps (peak 5e-4) instead of batch 16 for 1 000 (≈ 11.5 min in all).
# Session 32: the validation shard is made beside the second training shard (samples 0-1 849 | 1 850-3 499 + the
# 200 validation samples; the same 3 500 samples, so the same pool tensor for tensor): 3 min 48 s instead of 4 min 11 s.
# 0.10.2 (session 32): the refiner trains in the NHWC layout (--channels_last), 5 000 steps in 6 min 43 s.
# 0.11.0 (session 34): the same lines make the noise-robust refiner (SPIO_REFINER_NAME, _MODEL, _NOISE; below).
# 0.13.0 (session 40): a quarter of the two training shards' objects are ellipsoids of random extent along y
# (--extent_family 0.25, decision_rule_session40.md addendum 2); the noise-robust companion's refiner keeps 0.11.0's
# pool (SPIO_REFINER_FAMILY= below), so its recipe still makes the shipped companion.
SPIO_REFINER := $(PY) -m lightning_modules.spio.refiner_module
SPIO_REFINER_POOL := --last_stage --rim_bases 0.5 --shape_variety 0.5
SPIO_REFINER_FAMILY ?= --extent_family 0.25
SPIO_REFINER_NAME ?= refiner
SPIO_REFINER_MODEL ?=
SPIO_REFINER_NOISE ?=
SPIO_REFINER_MAPS = $(if $(SPIO_REFINER_MODEL),--model_path $(SPIO_REFINER_MODEL))
SPIO_REFINER_OUT = $(SCRATCH)/$(SPIO_REFINER_NAME)
train-spio-refiner: $(STAMP)
	mkdir -p $(SCRATCH)
	OMP_NUM_THREADS=1 $(SPIO_REFINER) pool --seed 300 --start 0 --n 1850 $(SPIO_REFINER_POOL) $(SPIO_REFINER_FAMILY) \
	  $(SPIO_REFINER_NOISE) $(SPIO_REFINER_MAPS) --out $(SPIO_REFINER_OUT)_pool_a.pt & { OMP_NUM_THREADS=1 $(SPIO_REFINER) pool --seed 300 \
	  --start 1850 --n 1650 $(SPIO_REFINER_POOL) $(SPIO_REFINER_FAMILY) $(SPIO_REFINER_NOISE) $(SPIO_REFINER_MAPS) \
	  --out $(SPIO_REFINER_OUT)_pool_b.pt && OMP_NUM_THREADS=1 $(SPIO_REFINER) pool --seed 301 --start 0 --n 200 \
	  $(SPIO_REFINER_MAPS) --out $(SPIO_REFINER_OUT)_val.pt; } && wait $$!
	OMP_NUM_THREADS=2 $(SPIO_REFINER) train --pool $(SPIO_REFINER_OUT)_pool_a.pt $(SPIO_REFINER_OUT)_pool_b.pt \
	  --val $(SPIO_REFINER_OUT)_val.pt --steps 5000 --val_every 500 --batch_size 4 --learning_rate 0.0005 --threads 2 \
	  --channels_last --out $(SPIO_REFINER_OUT).pt
	cp $(SPIO_REFINER_OUT).pt $(SPIO)/models/$(SPIO_REFINER_NAME).pt

# SPIO 0.11.0 (issue 24, session 34): the noise-robust companion weights, used only for images whose noise between
# the lines is not single-channel Rician (the bundle's noise check). train-spio's last DeepSPIO stage again from G3n
# with one noisy sample in four under Gaussian-on-magnitude or 4-coil root-sum-of-squares noise (--noise_models 0.25;
# 28 min), then the refiner's stage on its maps with the same share (11 min): 38 min after train-spio (session 33's DN; session 34 re-ran it: tensor for tensor).
train-spio-noise-robust: $(STAMP)
	$(SPIO_FAST2) --seed 68 $(SPIO_LAST) --noise_free_fraction 0.25 --rim_bases 0.125 --noise_models 0.25 \
	  --init_weights $(SCRATCH)/G3n.pt --work_dir $(SCRATCH)/G4hN --model_path $(SCRATCH)/G4hN.pt
	cp $(SCRATCH)/G4hN.pt $(SPIO)/models/model_noise_robust.pt
	$(MAKE) --no-print-directory train-spio-refiner SPIO_REFINER_NAME=refiner_noise_robust \
	  SPIO_REFINER_MODEL=$(SCRATCH)/G4hN.pt SPIO_REFINER_NOISE="--noise_models 0.25" SPIO_REFINER_FAMILY=

train-spio-scratch: train-spio-base
	$(SPIO_FAST) --seed 66 $(SPIO_LAST) --init_weights $(SCRATCH)/G2.pt --work_dir $(SCRATCH)/G3 \
	  --model_path $(SCRATCH)/G3.pt

train-spio-base: $(STAMP)
	mkdir -p $(SCRATCH)
	$(SPIO_FAST) --seed 60 --samples_per_epoch 4000 --l2_warmup_epochs 2 --learning_rate 0.002 \
	  --trainer#max_epochs 16 --work_dir $(SCRATCH)/F --model_path $(SCRATCH)/F.pt
	$(SPIO_FAST) --seed 60 --samples_per_epoch 4000 $(SPIO_AGAIN) --trainer#max_epochs 8 \
	  --init_weights $(SCRATCH)/F.pt --work_dir $(SCRATCH)/F2 --model_path $(SCRATCH)/F2.pt
	$(SPIO_FAST) --seed 62 --samples_per_epoch 16000 $(SPIO_AGAIN) --trainer#max_epochs 10 \
	  --init_weights $(SCRATCH)/F2.pt --work_dir $(SCRATCH)/G --model_path $(SCRATCH)/G.pt
	$(SPIO_FAST) --seed 64 --samples_per_epoch 16000 --learning_rate 0.0005 \
	  --trainer#max_epochs 3 $(SPIO_HEADS) --init_weights $(SCRATCH)/G.pt --work_dir $(SCRATCH)/G2 \
	  --model_path $(SCRATCH)/G2.pt

# The shipped rim classifier (bundle 0.4.0) is a 5-member ensemble trained in two stages. Stage 1 (synthetic
# lesion shapes, 56 subjects): member k holds fold k out; fold 0 fits the radiomics standardisation, the other
# members reuse it. Stage 2 (real lesion shapes, ../shared/data/ms_lesion_masks): each member is fine-tuned on
# the 15 training patients and validated on 5 others (configs/train_real_shapes.json); the ensemble is then
# calibrated (Platt) and its threshold chosen on those 5 validation patients. The radiomics-only comparison of
# benchmarks/rim_real_shapes.py is trained the same way (its stage 1: radiomics_only_ensemble.pt's members).
RIM        := monai_bundles/rim_lesion_detection
RIM_WORK   ?= $(HOME)/.cache/qsm_slicer_extension/rim
RIM_TRAIN  := OMP_NUM_THREADS=1 $(PY) -m monai.bundle run --config_file $(RIM)/configs/train.json --cache_dir $(RIM_WORK)/lesions
RIM_REAL   := OMP_NUM_THREADS=1 $(PY) -m monai.bundle run --work_dir $(RIM_WORK) \
              --config_file "['$(RIM)/configs/train.json','$(RIM)/configs/train_real_shapes.json']"
RIM_RADIOMICS := --network_def\#use_patch False --smote_k 0
RIM_MEMBERS = $(foreach k,0 1 2 3 4,$(RIM_WORK)/$(1)/member$(k).pt)
train-rim: $(STAMP)
	mkdir -p $(RIM_WORK)/members $(RIM_WORK)/radiomics_members
	$(RIM_TRAIN) --val_fold 0 --model_path $(RIM_WORK)/members/member0.pt
	for k in 1 2 3 4; do \
	  $(RIM_TRAIN) --val_fold $$k --model_path $(RIM_WORK)/members/member$$k.pt \
	    --stats_from $(RIM)/models/radiomics_standardisation.json \
	    --stats_path $(RIM_WORK)/members/stats$$k.json || exit 1; \
	done
	for k in 0 1 2 3 4; do \
	  $(RIM_TRAIN) --val_fold $$k --model_path $(RIM_WORK)/radiomics_members/member$$k.pt $(RIM_RADIOMICS) \
	    --stats_from $(RIM)/models/radiomics_standardisation.json \
	    --stats_path $(RIM_WORK)/radiomics_members/stats$$k.json || exit 1; \
	done
	for k in 0 1 2 3 4; do \
	  $(RIM_REAL) --val_fold $$k || exit 1; \
	  $(RIM_REAL) --val_fold $$k $(RIM_RADIOMICS) --init_weights $(RIM_WORK)/radiomics_members/member$$k.pt \
	    --model_path $(RIM_WORK)/real_shapes_radiomics_members/member$$k.pt || exit 1; \
	done
	$(PY) -m lightning_modules.rim.ensemble --cache_dir $(RIM_WORK)/real_shapes --val_role validation \
	  --stats $(RIM)/models/radiomics_standardisation.json --output $(RIM)/models/model.pt \
	  --members $(call RIM_MEMBERS,real_shapes_members)
	$(PY) -m lightning_modules.rim.ensemble --cache_dir $(RIM_WORK)/real_shapes --val_role validation \
	  --stats $(RIM)/models/radiomics_standardisation.json --member_options '{"use_patch": false, "smote_k": 0}' \
	  --output benchmarks/results/rim/radiomics_only_real_shapes.pt \
	  --members $(call RIM_MEMBERS,real_shapes_radiomics_members)

lint: $(STAMP)
	$(PY) -m ruff check lightning_modules tests benchmarks QSMSlicerExtension

clean:
	rm -rf demo_output .pytest_cache
