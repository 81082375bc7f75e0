pub fn helper() {
    super::a::config();
}
