"""One dfnb-train step (in float64: see tests/test_train_ddp.py), run alone (`python`) or as one of the processes of `torchrun`: writes the gradients, the
parameters after the step and the loss of rank 0 to argv[2]. Used by tests/test_train_ddp.py."""
import sys, torch
from dfnb.train import Trainer, TrainConfig, build_model, epoch_batches, init_distributed, dist_info
from dfnb import dfnet4

TINY = dfnet4.TINY | dict(scan_backend="torch")

def main(corpus, out):
    init_distributed(); rank, world = dist_info()
    torch.set_num_threads(1); torch.manual_seed(0)
    cfg = TrainConfig(batch_size=4, batch_size_scheduling="0/4", max_sample_len_s=1.0, max_epochs=2, seed=0, p_reverb=0.5)
    t = Trainer(build_model("dfnet4lite", TINY), f"{corpus}/dataset.cfg", corpus, f"{out}.run{rank}", cfg, dtype=torch.float64)
    b = epoch_batches(len(t.train_ds), 4, 0, cfg.seed, rank, world)[0]
    rec = t.train_step(t.collate([t.train_ds[i] for i in b]))
    loss = torch.tensor([rec["loss"]])
    if world > 1: torch.distributed.all_reduce(loss); loss /= world
    if rank == 0:
        torch.save({"grads": {n: p.grad.clone() for n, p in t.base.named_parameters()},
                    "params": {n: p.detach().clone() for n, p in t.base.named_parameters()},
                    "buffers": {n: b.clone() for n, b in t.base.named_buffers()}, "loss": float(loss)}, out)
    if world > 1:                          # every rank done (rank 0 may still be saving) before teardown, as dfnb-train does:
        torch.distributed.barrier(); torch.distributed.destroy_process_group()   # without it rank 1 can abort in gloo

if __name__ == "__main__": main(sys.argv[1], sys.argv[2])
