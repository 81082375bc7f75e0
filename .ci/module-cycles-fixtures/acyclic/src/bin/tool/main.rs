mod a;
mod b;

fn main() {
    a::run();
}
