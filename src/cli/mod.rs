pub mod fgd;
