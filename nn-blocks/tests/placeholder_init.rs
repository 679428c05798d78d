//! Alone in its own test binary: libtorch's generator is global, and tests running in parallel
//! threads would draw from it in between.

use splitnas_nn_blocks::{BatchNormSpec, ParamInit, ResNetBasicBlock};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

#[test]
fn placeholder_init_draws_no_random_numbers() {
    tch::manual_seed(7);
    let expected = Tensor::rand([4], (Kind::Float, Device::Cpu));
    tch::manual_seed(7);
    let vs = VarStore::new(Device::Cpu);
    let block = ResNetBasicBlock::new(&vs.root(), 3, 8, BatchNormSpec::AFFINE, ParamInit::Placeholder).unwrap();
    assert_eq!(block.conv_a.conv.weight.abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert!(Tensor::rand([4], (Kind::Float, Device::Cpu)).equal(&expected));
}
