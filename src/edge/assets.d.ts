/** Data modules (wrangler.toml `rules`): the built tokenizer asset arrives as an ArrayBuffer. */
declare module "*.bin" {
  const data: ArrayBuffer;
  export default data;
}
