//! Tensors across the plugin boundary.
//!
//! Only libtorch's C handle (`C_tensor*`, a heap-allocated `torch::Tensor`) crosses, never
//! `tch::Tensor` itself, whose layout is not ABI-stable. Both sides link the same libtorch
//! (the `torch_abi` tag of the root module guarantees it), so a handle made on one side is a
//! valid tensor on the other.
//!
//! Ownership:
//! - [`TensorRef`] borrows. The callee never frees it and must not keep it past the call.
//! - [`OwnedTensor`] owns one handle (not the storage: libtorch tensors are reference
//!   counted, so a handle to a parameter shares the parameter's storage and gradient).
//!   It carries the free function of the side that created it and calls it when dropped.

use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::Deref;
use std::ptr::NonNull;

use abi_stable::std_types::RString;
use abi_stable::StableAbi;
use tch::Tensor;

/// Opaque stand-in for libtorch's `C_tensor` (a `torch::Tensor*`).
#[repr(C)]
#[derive(StableAbi)]
pub struct TorchTensor {
    _private: [u8; 0],
}

fn raw(tensor: &Tensor) -> NonNull<TorchTensor> {
    NonNull::new(tensor.as_ptr() as *mut TorchTensor).expect("tch tensors are never null")
}

/// A tensor borrowed for the duration of one call.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct TensorRef<'a> {
    ptr: NonNull<TorchTensor>,
    _borrow: PhantomData<&'a TorchTensor>,
}

impl<'a> TensorRef<'a> {
    pub fn new(tensor: &'a Tensor) -> Self {
        TensorRef { ptr: raw(tensor), _borrow: PhantomData }
    }

    /// A `tch::Tensor` view of the borrowed handle; dropping it does not free the handle.
    pub fn tensor(&self) -> BorrowedTensor<'a> {
        // SAFETY: the pointer is a live C_tensor for 'a; ManuallyDrop stops us freeing it.
        let tensor = unsafe { Tensor::from_ptr(self.ptr.as_ptr() as *mut torch_sys::C_tensor) };
        BorrowedTensor { tensor: ManuallyDrop::new(tensor), _borrow: PhantomData }
    }
}

/// A `tch::Tensor` that does not own its handle (see [`TensorRef::tensor`]).
pub struct BorrowedTensor<'a> {
    tensor: ManuallyDrop<Tensor>,
    _borrow: PhantomData<&'a TorchTensor>,
}

impl Deref for BorrowedTensor<'_> {
    type Target = Tensor;
    fn deref(&self) -> &Tensor {
        &self.tensor
    }
}

/// Frees a handle made by this side of the boundary.
unsafe extern "C" fn free_tensor(ptr: NonNull<TorchTensor>) {
    // SAFETY: only ever called once, by OwnedTensor::drop, on a handle made by `OwnedTensor::new`.
    drop(unsafe { Tensor::from_ptr(ptr.as_ptr() as *mut torch_sys::C_tensor) });
}

/// An owned tensor handle; frees itself with its creator's free function.
#[repr(C)]
#[derive(StableAbi)]
pub struct OwnedTensor {
    ptr: NonNull<TorchTensor>,
    free: unsafe extern "C" fn(NonNull<TorchTensor>),
}

// SAFETY: a libtorch tensor handle is a reference-counted pointer; libtorch allows using
// and freeing it from any thread.
unsafe impl Send for OwnedTensor {}
unsafe impl Sync for OwnedTensor {}

impl OwnedTensor {
    /// Takes ownership of a tch tensor's handle.
    pub fn new(tensor: Tensor) -> Self {
        let tensor = ManuallyDrop::new(tensor);
        OwnedTensor { ptr: raw(&tensor), free: free_tensor }
    }

    /// A second handle sharing this tensor's storage (and autograd identity).
    pub fn share(tensor: &Tensor) -> Self {
        Self::new(tensor.shallow_clone())
    }

    pub fn as_ref(&self) -> TensorRef<'_> {
        TensorRef { ptr: self.ptr, _borrow: PhantomData }
    }

    /// A `tch::Tensor` view of this handle, valid while `self` lives.
    pub fn tensor(&self) -> BorrowedTensor<'_> {
        self.as_ref().tensor()
    }

    /// Converts into a `tch::Tensor` that shares the storage. The handle itself is freed here
    /// with its creator's function, so the result is independent of the creator.
    pub fn into_tensor(self) -> Tensor {
        self.tensor().shallow_clone()
    }
}

impl Drop for OwnedTensor {
    fn drop(&mut self) {
        // SAFETY: `ptr` was produced by the side owning `free` and is freed exactly once.
        unsafe { (self.free)(self.ptr) }
    }
}

impl fmt::Debug for OwnedTensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OwnedTensor({:?})", self.tensor().size())
    }
}

impl From<Tensor> for OwnedTensor {
    fn from(tensor: Tensor) -> Self {
        Self::new(tensor)
    }
}

/// A named handle to a parameter or buffer; shares the storage of the module's tensor.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct NamedTensor {
    pub name: RString,
    pub tensor: OwnedTensor,
}

impl NamedTensor {
    pub fn share(name: impl Into<RString>, tensor: &Tensor) -> Self {
        NamedTensor { name: name.into(), tensor: OwnedTensor::share(tensor) }
    }
}
