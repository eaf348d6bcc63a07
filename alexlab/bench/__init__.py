"""`alexlab bench [overrides]`: where a training step's time goes, measured side by side in one process.

Six sections (seven with `bench.load=N`, eight with `bench.study=DIR`), each written to `bench.json` in
`<paths.output_root>/bench/<date_time_microseconds>/` and printed as one table:

1. training: images/s of the LightningModule through a Lightning Trainer against a plain PyTorch loop (forward,
   cross-entropy, backward, optimiser step) on a copy of the same network with the same init, the same optimiser
   settings, the same precision (bf16-mixed: bfloat16 autocast), channels_last and compile switches, and one fixed
   synthetic batch of the config's shape, already on the device and reused every step (data loading is excluded).
   After `warmup` steps of each, they run in alternating windows of `steps` steps (`reps` Trainer windows, each
   followed by a plain one, started from a callback inside the Trainer's loop), so that each pair is measured
   under the same machine state; the ratio is the median of the pairs' ratios (on a shared machine, runs of the
   same loop a few seconds apart differ by up to 10%, which a before-then-after design would report as a ratio).
   The Trainer's window spans from a step's start to the start of the step after its last one: Lightning's hooks,
   the fetch of the batch and the module's torchmetrics updates (loss, top-1/top-5 error) are all inside. The lr
   schedule is not stepped in the plain loop (the default ones step once per epoch).
2. layers: what LRN and alexlab's max-pooling cost: plain loops (as in 1.) of the network with LRN (the config's
   kind, or `lrn=paper`), without LRN, and with LRN but nn.MaxPool2d, in alternating windows; the ratios of their
   step times, median of the rounds (bench_layers). Where the LRN runs its fused CPU kernel
   (alexlab.model.cpu_kernels), a fourth loop runs it in its tensor passes (the fallback) beside them.
3. data: images/s the config's train loader delivers (cfg.data, setup("fit"), `loader_batches` batches per
   repetition after `loader_warmup`), each batch handed to the data module's transfer_batch_to_device as the Trainer
   does (with data.decode=device that is where the batch's JPEGs are decoded and augmented, on the device), against
   the images/s the Trainer consumes: ratio > 1 = not input-bound.
4. arithmetic: training FLOPs per image = MACs (alexlab.info.layer_table, as `alexlab info`) x TRAIN_FLOPS_PER_MAC;
   in `reps` paired rounds, a window of `steps` plain-loop steps (achieved FLOP/s) then a `matmul_size`^2 float32
   matmul on the same device (peak); share of peak = the median of the rounds' achieved / peak (bench_arithmetic).
5. sweep: wall time of a real `alexlab -m experiment=smoke ... seed=0,..,N-1` subprocess (one training batch per
   job), minus the Python start-up of a process that imports alexlab.cli, divided by N: the time per job with
   everything included (compose, build, loggers, first batch, 1 step, teardown).
6. memory: this process's peak RSS, the sweep subprocess's (from a small helper process), the largest of all children's
   (RUSAGE_CHILDREN: loader workers, forked with this process's pages, or the sweep) and, on a GPU,
   torch.cuda.max_memory_allocated.
7. shared CPU (only with `bench.load=N`, N >= 1): the plain loop's wall and CPU seconds per step alone, then with N
   busy processes beside it (bench_shared_cpu): a fair run's wall time grows as its share of the cores shrinks and
   its CPU time per step stays; CPU time that grows with the load is burnt by waiting threads. Run it as
   `GOMP_SPINCOUNT=300000 alexlab bench bench.load=4` to see OpenMP's default spin instead of alexlab's.

8. study (only with `bench.study=DIR`, a study's sweep directory): where its finished runs spent their wall time, by
   the phases each record keeps (setup, train, validate, clean, checkpoint, test), and the train phase's seconds per
   optimiser step against this bench's Trainer step (run the bench on the study's config: `alexlab bench
   experiment=study bench.study=studies/paper_ablations`): what the training loop adds to the step.

Every timing is the median of `reps` repetitions after warm-up, with their min and max.

Bench knobs are `bench.KEY=VALUE` arguments (`+bench.KEY=VALUE` also accepted) next to the usual Hydra overrides:
steps, warmup, reps, loader_batches, loader_warmup, sweep_jobs, sweep_reps, matmul_size, matmul_reps, load, study.
The defaults take under a minute with the default config on a 2-core CPU (most of it the 2 x 29 training steps
of the small net with LRN). A network whose training step is heavy (more than HEAVY_STEP_MACS multiply-accumulates
per batch, e.g. model=paper at batch 128: 92 G) gets fewer steps by default (steps=1, warmup=1, reps=7), so that
model=paper's bench takes minutes on a CPU, not an hour (`data.batch_size=32` for less). What it measured on the
project's machines: docs/measurements.md. `alexlab bench experiment=quickstart` measures the quickstart's own step, its
real Fashion-MNIST pipeline and its memory.
"""

from alexlab.bench.run import main

__all__ = ["main"]
