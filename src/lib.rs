pub use userpci_framework as framework;
